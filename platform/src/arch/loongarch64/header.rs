//! The first 4 KiB of the image: a LoongArch Linux image header overlaid on an MS-DOS stub, and a
//! PE32+ header behind it, so one flat binary boots both through QEMU's `-kernel` (which reads the
//! Linux header: load it at `load_offset`, jump to `kernel_entry`) and as an EFI application
//! (machine 0x6264, subsystem 10) on UEFI boards. The ELF build carries the same bytes; loaders
//! of the ELF simply ignore them.
//!
//! The PE layout relies on the flat binary's file offsets equalling RVAs: the linker script puts
//! this header at PA 0x200000 (= ImageBase, RVA 0) and page-aligns every section, and the flat
//! image is the PT_LOAD bytes from the lowest physical address with gaps zero-filled. Relocations
//! are declared stripped, so UEFI loads the image exactly at ImageBase (the code is linked there)
//! or refuses it. All sizes and addresses come from linker-script symbols (`__pe_*`,
//! `__linux_*`), which the assembler cannot compute across sections itself.

use core::arch::global_asm;

global_asm!(
    ".section .text.head, \"ax\"",
    ".global __septum_header",
    "__septum_header:",
    // MS-DOS "MZ" + Linux LoongArch image header (Documentation/arch/loongarch/booting.rst).
    "    .word   0x5a4d",             // 0x00: "MZ", then a reserved half
    "    .word   0",                  // 0x04: reserved
    "    .dword  __linux_entry_pa",   // 0x08: kernel_entry (physical)
    "    .dword  __linux_image_size", // 0x10: effective image size (with .bss)
    "    .dword  __linux_load_pa",    // 0x18: load offset (physical)
    "    .dword  0, 0, 0",            // 0x20: reserved
    "    .word   0x818223cd",         // 0x38: LINUX_PE_MAGIC
    "    .word   __pe_header - __septum_header", // 0x3c: e_lfanew, offset of the PE header
    // PE signature and COFF file header.
    "__pe_header:",
    "    .ascii  \"PE\\0\\0\"",
    "    .hword  0x6264",                        // Machine: LoongArch64
    "    .hword  3",                             // NumberOfSections
    "    .word   0",                             // TimeDateStamp
    "    .word   0, 0",                          // symbol table pointer and count
    "    .hword  __pe_sections - __pe_optional", // SizeOfOptionalHeader
    // Characteristics: relocations stripped, executable, line numbers and debug info stripped,
    // large-address aware.
    "    .hword  0x0227",
    // PE32+ optional header.
    "__pe_optional:",
    "    .hword  0x20b",               // Magic: PE32+
    "    .byte   1, 0",                // linker version
    "    .word   __pe_text_size",      // SizeOfCode
    "    .word   __pe_init_data_size", // SizeOfInitializedData
    "    .word   __pe_bss_size",       // SizeOfUninitializedData
    "    .word   __pe_entry_rva",      // AddressOfEntryPoint
    "    .word   __pe_text_rva",       // BaseOfCode
    "    .dword  __linux_load_pa",     // ImageBase
    "    .word   0x1000",              // SectionAlignment
    "    .word   0x1000",              // FileAlignment
    "    .hword  0, 0, 0, 0, 0, 0",    // OS, image and subsystem versions
    "    .word   0",                   // Win32VersionValue
    "    .word   __pe_image_size",     // SizeOfImage
    "    .word   0x1000",              // SizeOfHeaders
    "    .word   0",                   // CheckSum
    "    .hword  10",                  // Subsystem: EFI application
    "    .hword  0",                   // DllCharacteristics
    "    .dword  0, 0, 0, 0",          // stack and heap reserve/commit
    "    .word   0",                   // LoaderFlags
    "    .word   16",                  // NumberOfRvaAndSizes
    "    .fill   16, 8, 0",            // data directories: none (no relocations, no imports)
    // Section table: name, VirtualSize, VirtualAddress, SizeOfRawData, PointerToRawData,
    // relocations/line numbers (unused), Characteristics.
    "__pe_sections:",
    "    .ascii  \".text\\0\\0\\0\"",
    "    .word   __pe_text_size, __pe_text_rva, __pe_text_size, __pe_text_rva",
    "    .word   0, 0",
    "    .hword  0, 0",
    "    .word   0x60000020", // code, execute, read
    "    .ascii  \".rodata\\0\"",
    "    .word   __pe_rodata_size, __pe_rodata_rva, __pe_rodata_size, __pe_rodata_rva",
    "    .word   0, 0",
    "    .hword  0, 0",
    "    .word   0x40000040", // initialized data, read
    "    .ascii  \".data\\0\\0\\0\"",
    "    .word   __pe_data_vsize, __pe_data_rva, __pe_data_fsize, __pe_data_rva",
    "    .word   0, 0",
    "    .hword  0, 0",
    "    .word   0xc0000040", // initialized data, read, write
    // The code starts on the next page (SizeOfHeaders = 0x1000).
    "    .balign 4096",
);
