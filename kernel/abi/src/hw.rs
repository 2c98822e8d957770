//! Hardware capabilities: the well-known authority handle root starts with, the port and IRQ
//! number spaces, and the cache modes of device Frames (`docs/capabilities.md`, "Hardware").

use crate::{Error, Handle};

/// Root's hardware authority: the kernel inserts it into root's table third, after root's own
/// Process (arg0) and the initfs Frame (arg1), so its value is fixed: index 2, generation 1.
/// No other process starts with one; root may delegate it like any handle (`TRANSFER`).
pub const ROOT_HW_AUTHORITY: Handle = Handle::new(2, 1);

/// Number of x86 I/O ports: `ioport_create` ranges lie in `0..IO_PORTS`.
pub const IO_PORTS: u64 = 0x1_0000;

/// ISA IRQs (`0..ISA_IRQS`) are translated through the MADT's interrupt source overrides
/// (IRQ0 → GSI 2 on most PCs); `irq_create` takes any higher number as a GSI directly.
pub const ISA_IRQS: u64 = 16;

/// Highest GSI count the kernel routes: `irq_create` refuses GSIs at or above it.
pub const MAX_GSIS: u64 = 64;

code_enum! {
    /// How `frame_create_physical` memory is mapped.
    pub enum DeviceCache: invalid = |_raw| -> Error { Error::InvalidArgument } {
        /// Strong uncacheable: device registers (every access reaches the device, in order).
        Uncached = 0 => "uncached",
        /// Write-combining: framebuffers (writes are buffered and merged; reads uncached).
        WriteCombining = 1 => "write-combining",
    }
}

/// `system_power` op: ACPI S5 power-off.
pub const POWER_OFF: u64 = 0;
/// `system_power` op: reset the machine (0xCF9, then the keyboard controller, then a triple
/// fault).
pub const POWER_REBOOT: u64 = 1;

/// The boot framebuffer as `framebuffer_info` reports it: [`FramebufferInfo::WORDS`]
/// little-endian `u64`s, in field order.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
#[repr(C)]
pub struct FramebufferInfo {
    /// Physical address of pixel (0, 0).
    pub phys: u64,
    /// Width in pixels.
    pub width: u64,
    /// Height in pixels.
    pub height: u64,
    /// Bytes per row.
    pub pitch: u64,
    /// Bits per pixel.
    pub bpp: u64,
    /// Red mask size in bits.
    pub red_size: u64,
    /// Red mask shift.
    pub red_shift: u64,
    /// Green mask size in bits.
    pub green_size: u64,
    /// Green mask shift.
    pub green_shift: u64,
    /// Blue mask size in bits.
    pub blue_size: u64,
    /// Blue mask shift.
    pub blue_shift: u64,
}

impl FramebufferInfo {
    /// Words per record.
    pub const WORDS: usize = 11;
    /// Bytes per record.
    pub const SIZE: usize = Self::WORDS * 8;

    /// The record as words.
    pub const fn to_words(&self) -> [u64; Self::WORDS] {
        [
            self.phys,
            self.width,
            self.height,
            self.pitch,
            self.bpp,
            self.red_size,
            self.red_shift,
            self.green_size,
            self.green_shift,
            self.blue_size,
            self.blue_shift,
        ]
    }

    /// The record from words the kernel wrote.
    pub const fn from_words(w: &[u64; Self::WORDS]) -> FramebufferInfo {
        FramebufferInfo {
            phys: w[0],
            width: w[1],
            height: w[2],
            pitch: w[3],
            bpp: w[4],
            red_size: w[5],
            red_shift: w[6],
            green_size: w[7],
            green_shift: w[8],
            blue_size: w[9],
            blue_shift: w[10],
        }
    }
}
