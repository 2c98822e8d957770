//! `template` (interrupt-driven), copied by `cargo xtask new-server NAME --irq`: counts the CMOS
//! clock's periodic interrupts (IRQ 8, ports 0x70-0x71, on every PC) and serves the count. For
//! your device change the manifest grants and `Device`; keep the shape: grants, setup, serve.
#![no_std]
#![no_main]
#![forbid(unsafe_code)]

use hsync_root_api::Start;
use hsync_template_api::{TemplateDeviceServer, TemplateError};
use libhsync::StartArgs;
use libhsync::hw::IoPorts;

libhsync::entry!(main);

/// CMOS registers: status A (rate), B (interrupt enables), C (what fired; reading it acks).
const REG: [u8; 3] = [0x0A, 0x0B, 0x0C];
/// Register B's periodic-interrupt enable, also register C's "periodic interrupt fired" bit.
const PERIODIC: u8 = 0x40;
/// Rate 13: 32768 Hz >> 12 = 8 interrupts a second.
const RATE: u8 = 13;

/// The server's state: the device and what it counted.
struct Device {
    cmos: IoPorts,
    count: u64,
}

impl Device {
    /// Selects register `reg` (bit 7 keeps NMIs off meanwhile), then reads or writes it.
    fn read(&self, reg: u8) -> u8 {
        self.cmos.write_u8(0, 0x80 | reg);
        self.cmos.read_u8(1)
    }
    fn write(&self, reg: u8, value: u8) {
        self.cmos.write_u8(0, 0x80 | reg);
        self.cmos.write_u8(1, value);
    }

    /// The IRQ handler: reading register C acks the device; count periodic interrupts.
    fn on_irq(&mut self) {
        if self.read(REG[2]) & PERIODIC != 0 {
            self.count += 1;
            if self.count.is_power_of_two() {
                log::info!("template: {} interrupts", self.count);
            }
        }
    }
}

impl TemplateDeviceServer for Device {
    fn interrupts(&mut self, _badge: u64) -> Result<u64, TemplateError> {
        Ok(self.count)
    }
}

fn main(mut args: StartArgs) -> i32 {
    let Some(mut start) = Start::take(&mut args) else {
        log::error!("template: not started by root");
        return 1;
    };
    let (Some(endpoint), Some((irq_line, number)), Some(Ok(cmos))) =
        (start.export(0), start.irq(0), start.io_ports(0))
    else {
        log::error!("template: the manifest must grant an export, an IRQ and a port range");
        return 1;
    };
    let mut device = Device { cmos, count: 0 };
    device.write(REG[0], (device.read(REG[0]) & 0xF0) | RATE);
    device.write(REG[1], device.read(REG[1]) | PERIODIC);
    if let Some(root) = start.root() {
        hsync_root_api::report_ready(&root, &mut args.ipc);
    }
    log::info!("template: serving, IRQ {number}");
    let err = libhsync::serve(&endpoint)
        .on_irq(irq_line, Device::on_irq)
        .run(&mut args.ipc, &mut device, Device::dispatch);
    log::error!("template: stopped serving: {err:?}");
    2
}
