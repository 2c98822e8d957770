//! System-call numbers.
//!
//! The set is deliberately small: a call exists only when it cannot be expressed as an
//! operation on a handle the caller already holds. Number 0 is never a system call, so a
//! zeroed `rax` (a classic stub bug) fails with [`Error::InvalidSyscall`](crate::Error) instead
//! of doing something. Argument and result registers for each call are listed on its variant
//! and, in full, in `docs/syscalls.md`; the register names are in [`regs`](crate::regs).

code_enum! {
    /// A system-call number, passed in `rax`.
    ///
    /// Decode with `Sysnum::try_from(rax)`: an unknown number is
    /// [`Error::InvalidSyscall`](crate::Error::InvalidSyscall), never a panic.
    pub enum Sysnum: invalid = |_raw| -> crate::Error { crate::Error::InvalidSyscall } {
        /// `debug_log(ptr, len)`: write bytes to the kernel debug log (until the serial server
        /// exists, the only way user space can print).
        DebugLog = 1 => "debug_log",

        /// `handle_close(h)`: remove a handle from the caller's table; the object dies with its
        /// last handle.
        HandleClose = 2 => "handle_close",
        /// `handle_duplicate(h, rights, badge) -> h2`: a second handle to the same object with
        /// rights ⊆ the original's, optionally badging an unbadged endpoint handle.
        HandleDuplicate = 3 => "handle_duplicate",
        /// `handle_restrict(h, mask) -> rights`: drop rights from a handle in place.
        HandleRestrict = 4 => "handle_restrict",
        /// `handle_inspect(h) -> (kind, rights, badge)`: what a handle names and allows.
        HandleInspect = 5 => "handle_inspect",
        /// `handle_grant(process, h, rights) -> h2`: copy a handle into another process's table
        /// (how a creator equips a child before it starts).
        HandleGrant = 6 => "handle_grant",

        /// `endpoint_create() -> ep`: a new synchronous IPC endpoint.
        EndpointCreate = 7 => "endpoint_create",
        /// `ipc_call(ep, info, w0..w3) -> (info, w0..w3)`: send and wait for the reply.
        IpcCall = 8 => "ipc_call",
        /// `ipc_send(ep, info, w0..w3)`: one-way send, blocking until a receiver takes it.
        IpcSend = 9 => "ipc_send",
        /// `ipc_try_send(ep, info, w0..w3)`: one-way send only if a receiver is waiting.
        IpcTrySend = 10 => "ipc_try_send",
        /// `ipc_recv(ep) -> (badge, info, w0..w3)`: wait for a message.
        IpcRecv = 11 => "ipc_recv",
        /// `ipc_try_recv(ep) -> (badge, info, w0..w3)`: take a message only if one is waiting.
        IpcTryRecv = 12 => "ipc_try_recv",
        /// `ipc_reply(reply, info, w0..w3)`: answer a caller (the thread's pending caller when
        /// `reply` is null, else a saved Reply handle, which is consumed).
        IpcReply = 13 => "ipc_reply",
        /// `ipc_reply_recv(ep, info, w0..w3) -> (badge, info, w0..w3)`: answer the pending caller
        /// and wait for the next message — a server loop's one system call.
        IpcReplyRecv = 14 => "ipc_reply_recv",
        /// `ipc_reply_save() -> reply`: move the pending caller into a one-shot Reply handle so
        /// that the server can answer later.
        IpcReplySave = 15 => "ipc_reply_save",

        /// `notification_create() -> n`: a new notification (64 signal bits).
        NotificationCreate = 16 => "notification_create",
        /// `notification_signal(n, bits)`: OR bits into a notification, waking a waiter.
        NotificationSignal = 17 => "notification_signal",
        /// `notification_wait(n) -> bits`: wait until some bit is set, take and clear all bits.
        NotificationWait = 18 => "notification_wait",
        /// `notification_poll(n) -> bits`: take and clear the bits if any are set.
        NotificationPoll = 19 => "notification_poll",

        /// `frame_create(size) -> frame`: allocate zeroed RAM as a mappable Frame.
        FrameCreate = 20 => "frame_create",
        /// `frame_map(frame, process, vaddr, flags, offset, len)`: map part of a Frame into a
        /// process's address space.
        FrameMap = 21 => "frame_map",
        /// `frame_unmap(process, vaddr, len)`: remove mappings from a process's address space.
        FrameUnmap = 22 => "frame_unmap",

        /// `process_create(image, name_ptr, name_len, priority) -> (process, thread)`: a new,
        /// not yet running process, loaded from an ELF image Frame or empty.
        ProcessCreate = 23 => "process_create",
        /// `process_kill(process)`: end a process now.
        ProcessKill = 24 => "process_kill",
        /// `process_wait(process, record_ptr, deadline) -> (status, code)`: wait for a process to
        /// end and learn how (exit code, kill, or fault record).
        ProcessWait = 25 => "process_wait",
        /// `process_exit(code)`: end the calling process. Does not return.
        ProcessExit = 26 => "process_exit",

        /// `thread_create(process, entry, stack_top, ipc_buffer, priority) -> thread`: a new,
        /// not yet running thread in a process.
        ThreadCreate = 27 => "thread_create",
        /// `thread_start(thread, arg0, arg1)`: let a created thread run.
        ThreadStart = 28 => "thread_start",
        /// `thread_exit(va, len)`: end the calling thread, first unmapping `[va, va + len)`
        /// of its process when `len` is not 0 (its own stack: it no longer runs on it). Does
        /// not return.
        ThreadExit = 29 => "thread_exit",
        /// `yield()`: give the rest of the time slice to another ready thread of equal priority.
        Yield = 30 => "yield",
        /// `sleep_until(deadline)`: block until the monotonic clock reaches `deadline`.
        SleepUntil = 31 => "sleep_until",
        /// `clock_read() -> ns`: the monotonic clock, in nanoseconds since boot.
        ClockRead = 32 => "clock_read",
        /// `null()`: does nothing and succeeds; the baseline of the syscall benchmark.
        Null = 33 => "null",
        /// `system_info(page)`: page [`SYSINFO_MEMORY`](crate::SYSINFO_MEMORY) (0) →
        /// `(free, used, total, processes, threads, objects)`, PMM frame counters and live
        /// kernel-object counts, for tests (leak checks), `mem` and `ps`; page
        /// [`SYSINFO_COUNTERS`](crate::SYSINFO_COUNTERS) (1) → `(fpu_traps, fast_handoffs,
        /// parked_resumes, kstack_high_water, kstack_size, reaped)`, kernel event counters since
        /// boot; page [`SYSINFO_HEAP`](crate::SYSINFO_HEAP) (2) → `(heap_mapped,
        /// heap_allocated, reserve_frames, kernel_table_frames, 0, 0)`.
        SystemInfo = 34 => "system_info",

        /// `ioport_create(authority, first, count) -> range`: an IoPortRange over ports
        /// `first..first + count`, made with the hardware authority (root's).
        IoportCreate = 35 => "ioport_create",
        /// `ioport_enable(range)`: let the calling process execute `in`/`out` on the range's
        /// ports (its I/O permission bitmap, installed in the TSS when it runs).
        IoportEnable = 36 => "ioport_enable",
        /// `irq_create(authority, irq) -> line`: an IrqLine for an ISA IRQ (0..=15, MADT
        /// overrides applied) or a GSI (16..), made with the hardware authority.
        IrqCreate = 37 => "irq_create",
        /// `irq_bind(line, notification, bits)`: the interrupt signals `bits` on the
        /// notification; delivery starts unmasked.
        IrqBind = 38 => "irq_bind",
        /// `irq_ack(line)`: unmask the line after its interrupt was handled (each interrupt
        /// masks it until then, so a level-triggered line cannot storm).
        IrqAck = 39 => "irq_ack",
        /// `frame_create_physical(authority, phys, len, cache) -> frame`: a Frame over device
        /// memory (MMIO, VGA, a framebuffer), mapped uncached or write-combining; never RAM.
        FrameCreatePhysical = 40 => "frame_create_physical",
        /// `system_power(authority, op)`: power the machine off ([`POWER_OFF`](crate::POWER_OFF))
        /// or reboot it ([`POWER_REBOOT`](crate::POWER_REBOOT)), with the hardware authority.
        /// Returns only if that failed.
        SystemPower = 41 => "system_power",
        /// `handle_list(process, ptr, len) -> count`: one [`HandleRecord`](crate::HandleRecord)
        /// per live handle of a process, written to a user buffer; returns how many there are.
        HandleList = 42 => "handle_list",
        /// `framebuffer_info(authority, ptr, len)`: the boot framebuffer's
        /// [`FramebufferInfo`](crate::FramebufferInfo) record, written to a user buffer;
        /// `NotFound` when the loader gave none.
        FramebufferInfo = 43 => "framebuffer_info",
        /// `notification_timer(n, bits, deadline)`: arm the notification's one-shot timer — at
        /// `deadline` (the `clock_read` clock) the kernel signals `bits` on it; a new call
        /// replaces the armed timer, [`DEADLINE_NEVER`](crate::DEADLINE_NEVER) disarms it.
        NotificationTimer = 44 => "notification_timer",
        /// `thread_set_cpu(thread, cpu)`: move a thread (handle with `MANAGE`) to CPU `cpu`
        /// (`0..cpus`, see `system_info` page [`SYSINFO_CPUS`](crate::SYSINFO_CPUS)); it runs
        /// only there from its next switch on.
        ThreadSetCpu = 45 => "thread_set_cpu",
    }
}

impl Sysnum {
    /// Whether a successful call never returns to the calling thread.
    pub const fn is_noreturn(self) -> bool {
        matches!(self, Sysnum::ProcessExit | Sysnum::ThreadExit)
    }
}
