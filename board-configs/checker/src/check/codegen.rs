//! Turns a checked board into Rust source for the image: one `pub static BOARD: board_config::Board`
//! built from the model's own types. The checked board is the same model in the checker's form
//! (`spec::Checked`), and each model type is written from a pattern naming every field, so a
//! field added to the model fails to compile here (and in the checker's conversion) until it is
//! written: no drift between what was checked and what the image gets (hvisor's tool/ABI
//! drift). Only checked boards reach this module; it never validates anything itself.
//!
//! The source is built as tokens (`quote`), not as text: every string from the file (names,
//! shared partners, image paths) becomes a literal token, which escapes quotes, backslashes and
//! control characters, so board text, which is hostile input for the image build, cannot become
//! code. The tokens are printed as formatted Rust (`prettyplease`) so a board owner can read the
//! generated file.

use super::linux::PlannedBoot;
use super::spec::{CheckedBoard, FileSpec, ImageSpec, PartitionSpec, RegionSpec};
use crate::model::{
    Access, Board, IrqChip, MemRange, Partition, PassthroughUart, PortRange, Region, Uart,
    UartAccess,
};
use proc_macro2::{Literal, TokenStream};
use quote::{format_ident, quote};

/// A number as a hexadecimal literal: addresses and sizes read as they do in the board file.
fn hex(v: impl Into<u64>) -> Literal {
    format!("{:#x}", v.into())
        .parse()
        .expect("a hexadecimal integer is a literal")
}

/// A number as a plain literal whose type the field gives.
fn num(v: impl Into<u64>) -> Literal {
    Literal::u64_unsuffixed(v.into())
}

/// A fieldless enum's value, named by its derived `Debug` (which prints the variant's name).
fn variant(ty: &str, v: impl core::fmt::Debug) -> TokenStream {
    let ty = format_ident!("{ty}");
    let v = format_ident!("{}", format!("{v:?}"));
    quote!(board_config::#ty::#v)
}

fn range(r: MemRange) -> TokenStream {
    let MemRange { start, size } = r;
    let (start, size) = (hex(start), hex(size));
    quote!(board_config::MemRange { start: #start, size: #size })
}

fn ranges(rs: &[MemRange]) -> TokenStream {
    let rs = rs.iter().map(|&r| range(r));
    quote!(&[#(#rs),*])
}

fn port_range(r: PortRange) -> TokenStream {
    let PortRange { start, size } = r;
    let (start, size) = (hex(start), hex(size));
    quote!(board_config::PortRange { start: #start, size: #size })
}

fn numbers(v: &[u32]) -> TokenStream {
    let v = v.iter().map(|&n| num(n));
    quote!(&[#(#v),*])
}

fn uart_access(a: UartAccess) -> TokenStream {
    match a {
        UartAccess::Mmio { base } => {
            let base = hex(base);
            quote!(board_config::UartAccess::Mmio { base: #base })
        }
        UartAccess::Port { base } => {
            let base = hex(base);
            quote!(board_config::UartAccess::Port { base: #base })
        }
    }
}

fn flags(a: Access) -> TokenStream {
    let Access { read, write, exec } = a;
    quote!(board_config::Access { read: #read, write: #write, exec: #exec })
}

fn optional(v: Option<TokenStream>) -> TokenStream {
    match v {
        Some(v) => quote!(Some(#v)),
        None => quote!(None),
    }
}

fn region(r: &RegionSpec) -> TokenStream {
    // Every field by name, here and in `partition` and `rust`: a field added to the model does
    // not compile until it is written.
    let Region {
        guest,
        host,
        size,
        access,
        cache,
        shared_with,
    } = r;
    let (guest, host, size) = (hex(*guest), hex(*host), hex(*size));
    let access = flags(*access);
    let cache = variant("Cache", cache);
    let shared_with = optional(shared_with.as_deref().map(|q| quote!(#q)));
    quote! {
        board_config::Region::<board_config::Embedded> {
            guest: #guest,
            host: #host,
            size: #size,
            access: #access,
            cache: #cache,
            shared_with: #shared_with,
        }
    }
}

fn passthrough(u: Option<PassthroughUart>) -> TokenStream {
    optional(u.map(|PassthroughUart { access, irq }| {
        let access = uart_access(access);
        let irq = optional(irq.map(|i| {
            let i = num(i);
            quote!(#i)
        }));
        quote!(board_config::PassthroughUart { access: #access, irq: #irq })
    }))
}

/// `include_bytes!` of a checked file, by absolute path so it resolves from OUT_DIR (rustc then
/// also tracks the file).
fn include(resolved: &std::path::Path) -> TokenStream {
    let abs = std::fs::canonicalize(resolved).unwrap_or_else(|_| resolved.to_path_buf());
    let abs = abs.display().to_string();
    quote!(include_bytes!(#abs))
}

fn image(i: &ImageSpec) -> TokenStream {
    match i {
        ImageSpec::Guest(g) => {
            let g = variant("TestGuest", g);
            quote!(board_config::Image::Guest(#g))
        }
        ImageSpec::Linux {
            kernel,
            initrd,
            plan,
            ..
        } => match plan {
            Some(plan) => linux_image(kernel, initrd.as_ref(), plan),
            // A board that failed its checks never reaches the generator, so the plan is there.
            None => quote!(compile_error!("Linux partition without a checked layout")),
        },
        ImageSpec::File { path, resolved, .. } => {
            let bytes = include(resolved);
            quote!(board_config::Image::File { path: #path, bytes: #bytes })
        }
    }
}

/// A Linux boot as data: the files by `include_bytes!`, the made blobs as byte-string literals.
fn linux_image(kernel: &FileSpec, initrd: Option<&FileSpec>, plan: &PlannedBoot) -> TokenStream {
    let PlannedBoot {
        kernel: pieces,
        initrd: initrd_at,
        made,
        entry,
        args,
        cmdline,
        zero_page,
        gdt,
        ram_bytes: _,
    } = plan;
    let file = include(&kernel.resolved);
    let mut blobs: Vec<TokenStream> = pieces
        .iter()
        .map(|&(gpa, offset, len)| {
            let (gpa, offset, len) = (hex(gpa), hex(offset as u64), hex(len as u64));
            quote! {
                board_config::Blob {
                    gpa: #gpa,
                    bytes: (#file as &[u8]).split_at(#offset).1.split_at(#len).0,
                }
            }
        })
        .collect();
    if let (Some(f), Some(at)) = (initrd, initrd_at) {
        let (at, bytes) = (hex(*at), include(&f.resolved));
        blobs.push(quote!(board_config::Blob { gpa: #at, bytes: #bytes }));
    }
    for (gpa, bytes) in made {
        let (gpa, bytes) = (hex(*gpa), Literal::byte_string(bytes));
        blobs.push(quote!(board_config::Blob { gpa: #gpa, bytes: #bytes }));
    }
    let path = &kernel.path;
    let (entry, zero_page, gdt) = (hex(*entry), hex(*zero_page), hex(*gdt));
    let args = args.iter().map(|&a| hex(a));
    let (cmdline, cmdline_capacity) = (hex(cmdline.0), num(cmdline.1));
    quote! {
        board_config::Image::Linux(board_config::LinuxBoot {
            kernel_path: #path,
            blobs: &[#(#blobs),*],
            entry: #entry,
            args: [#(#args),*],
            cmdline: #cmdline,
            cmdline_capacity: #cmdline_capacity,
            zero_page: #zero_page,
            gdt: #gdt,
        })
    }
}

fn partition(p: &PartitionSpec) -> TokenStream {
    let Partition {
        name,
        cpus,
        memory,
        mmio,
        ports,
        irqs,
        uart,
        image: what,
        load,
        entry,
        console,
        manager,
    } = p;
    let cpus = numbers(cpus);
    let memory = memory.iter().map(region);
    let mmio = ranges(mmio);
    let ports = ports.iter().map(|&r| port_range(r));
    let irqs = numbers(irqs);
    let uart = passthrough(*uart);
    let what = image(what);
    let (load, entry) = (hex(*load), hex(*entry));
    let console = variant("PartitionConsole", console);
    quote! {
        board_config::Partition::<board_config::Embedded> {
            name: #name,
            cpus: #cpus,
            memory: &[#(#memory),*],
            mmio: #mmio,
            ports: &[#(#ports),*],
            irqs: #irqs,
            uart: #uart,
            image: #what,
            load: #load,
            entry: #entry,
            console: #console,
            manager: #manager,
        }
    }
}

/// The tokens of `pub static BOARD: board_config::Board = …;`.
fn board(b: &CheckedBoard) -> TokenStream {
    let Board {
        name,
        arch,
        boot,
        emulator,
        cpus,
        ram,
        hypervisor,
        reserved,
        base_page,
        console,
        irqchip,
        log_level,
        partitions,
    } = &b.board;
    let arch = variant("Arch", arch);
    let boot = variant("BootMethod", boot);
    let emulator = optional(emulator.map(|e| variant("Emulator", e)));
    let cpus = num(*cpus);
    let ram = ranges(ram);
    let hypervisor = range(*hypervisor);
    let reserved = ranges(reserved);
    let base_page = hex(*base_page);
    let Uart {
        access,
        clock_hz,
        baud,
    } = *console;
    let (access, clock_hz, baud) = (uart_access(access), num(clock_hz), num(baud));
    let IrqChip { kind, mmio, lines } = *irqchip;
    let (kind, mmio, lines) = (variant("IrqChipKind", kind), range(mmio), num(lines));
    let log_level = variant("LogLevel", log_level);
    let partitions = partitions.iter().map(partition);
    quote! {
        pub static BOARD: board_config::Board = board_config::Board::<board_config::Embedded> {
            name: #name,
            arch: #arch,
            boot: #boot,
            emulator: #emulator,
            cpus: #cpus,
            ram: #ram,
            hypervisor: #hypervisor,
            reserved: #reserved,
            base_page: #base_page,
            console: board_config::Uart { access: #access, clock_hz: #clock_hz, baud: #baud },
            irqchip: board_config::IrqChip { kind: #kind, mmio: #mmio, lines: #lines },
            log_level: #log_level,
            partitions: &[#(#partitions),*],
        };
    }
}

/// Rust source defining `pub static BOARD: board_config::Board`, formatted.
pub fn rust(b: &CheckedBoard) -> String {
    let tokens = board(b);
    let file: syn::File = syn::parse2(tokens).expect("the generated board is one Rust item");
    format!(
        "// Generated by board-config from a checked board file; do not edit.\n{}",
        prettyplease::unparse(&file)
    )
}
