//! The legacy 8259 PICs: remapped away from the exception vectors, then fully masked.
//!
//! The loader masks them, but a masked PIC can still raise a spurious IRQ 7/15, delivered at
//! its base vector + 7: with the BIOS mapping that would be vector 15, indistinguishable from an
//! exception. Remapping to 0x20/0x28 makes such an event a harmless, recognisable interrupt.

use x86_64::instructions::port::Port;

use super::trap::vector::PIC_BASE;

/// Remaps both PICs to `PIC_BASE..PIC_BASE + 16` and masks every line.
pub fn remap_and_mask() {
    let mut m_cmd = Port::<u8>::new(0x20);
    let mut m_data = Port::<u8>::new(0x21);
    let mut s_cmd = Port::<u8>::new(0xA0);
    let mut s_data = Port::<u8>::new(0xA1);
    // SAFETY: the standard ICW1-4 initialisation of the two 8259s; the kernel is their only
    // user, interrupts are off, and all lines end up masked.
    unsafe {
        m_cmd.write(0x11); // ICW1: edge, cascade, expect ICW4
        s_cmd.write(0x11);
        m_data.write(PIC_BASE as u8); // ICW2: vector base
        s_data.write(PIC_BASE as u8 + 8);
        m_data.write(0x04); // ICW3: slave on IRQ2
        s_data.write(0x02);
        m_data.write(0x01); // ICW4: 8086 mode
        s_data.write(0x01);
        m_data.write(0xFF); // mask all
        s_data.write(0xFF);
    }
}
