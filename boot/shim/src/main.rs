//! HSYNC-OS boot shim (OWNER: shim helper).
#![no_std]
#![no_main]

#[panic_handler]
fn panic(_info: &core::panic::PanicInfo) -> ! {
    loop {}
}
