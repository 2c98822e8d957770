//! Pure logic of the HSYNC-OS boot shim, tested on the host (OWNER: shim helper).
#![no_std]
