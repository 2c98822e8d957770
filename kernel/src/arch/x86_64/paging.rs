//! Page-table manipulation (OWNER: kernel-mm helper).
