//! The ACPI tables a Linux partition finds through `boot_params.acpi_rsdp_addr`: generated from
//! what the partition owns and nothing else. RSDP → XSDT → {FADT → DSDT, MADT}. The platform is
//! hardware-reduced (no PM timer, no PM1 event block, no SCI, no 8259): the only fixed hardware
//! is the sleep control register, an I/O port the hypervisor emulates so that `poweroff` reaches
//! it through `\_S5`. The MADT lists exactly the partition's vCPUs and its virtual I/O APIC.
//!
//! The tables are laid out in one blob to be placed at a guest-physical address the caller
//! chose; every table's address inside it is that base plus its offset.

use acpi_tables::fadt::{FADTBuilder, Flags};
use acpi_tables::gas::{AccessSize, AddressSpace, GAS};
use acpi_tables::madt::{
    EnabledStatus, IoApic, LocalInterruptController, ProcessorLocalApic, MADT,
};
use acpi_tables::rsdp::Rsdp;
use acpi_tables::sdt::Sdt;
use acpi_tables::xsdt::XSDT;
use acpi_tables::{aml, Aml, AmlSink};
use alloc::vec::Vec;
use zerocopy::{Immutable, IntoBytes};

const OEM_ID: [u8; 6] = *b"SEPTUM";
const OEM_TABLE_ID: [u8; 8] = *b"SEPTUMPT";
const OEM_REVISION: u32 = 1;
/// The local APIC's xAPIC address, which the MADT header must give even in x2APIC mode.
const LOCAL_APIC_ADDRESS: u32 = 0xfee0_0000;
use crate::acpi_sleep::{RESET_PORT_OFFSET, RESET_VALUE, S5_SLEEP_TYPE};
/// FADT IA-PC boot architecture flags (ACPI 6.5, table 5.11).
const IAPC_NO_VGA: u16 = 1 << 2;
const IAPC_NO_MSI: u16 = 1 << 3;
const IAPC_NO_CMOS_RTC: u16 = 1 << 5;

/// The partition's virtual I/O APIC as its MADT describes it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct IoApicView {
    pub id: u8,
    pub address: u32,
    pub gsi_base: u32,
}

/// What the tables describe: the partition's own vCPUs and devices.
#[derive(Clone, Copy, Debug)]
pub struct AcpiPlatform<'a> {
    /// The APIC IDs of the partition's vCPUs, vCPU 0 first.
    pub apic_ids: &'a [u32],
    pub ioapic: Option<IoApicView>,
    /// The I/O port of the emulated sleep control (and status) register.
    pub sleep_port: u16,
    /// The partition's virtual console, described as a PC serial port (`PNP0501`) so Linux's
    /// 8250 driver finds it through ACPI with its interrupt: a hardware-reduced platform has no
    /// legacy ISA interrupts, so an undescribed COM1 would get none.
    pub console: Option<ConsoleView>,
}

/// A 16550 the DSDT describes: its eight I/O ports and the GSI (I/O APIC input) of its
/// interrupt, edge-triggered and active high as an ISA serial port's.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ConsoleView {
    pub port: u16,
    pub gsi: u32,
}

/// COM1 as a PC has it: ports 0x3f8-0x3ff, ISA IRQ 4 (GSI 4 on the first I/O APIC).
pub const COM1: ConsoleView = ConsoleView {
    port: 0x3f8,
    gsi: 4,
};

/// A Processor Local x2APIC structure (MADT type 9), for APIC IDs the 8-bit structure cannot hold.
#[repr(C, packed)]
#[derive(Clone, Copy, Debug, IntoBytes, Immutable)]
struct LocalX2Apic {
    kind: u8,
    length: u8,
    reserved: u16,
    x2apic_id: u32,
    flags: u32,
    uid: u32,
}

impl Aml for LocalX2Apic {
    fn to_aml_bytes(&self, sink: &mut dyn AmlSink) {
        for b in self.as_bytes() {
            sink.byte(*b);
        }
    }
}

/// The tables and where the RSDP sits in them (always offset 0).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct AcpiBlob {
    pub bytes: Vec<u8>,
}

fn aml_bytes(t: &dyn Aml) -> Vec<u8> {
    let mut v = Vec::new();
    t.to_aml_bytes(&mut v);
    v
}

/// Rounds `v` up to a multiple of 16 (tables are placed on 16-byte boundaries).
fn align16(v: usize) -> usize {
    (v + 15) & !15
}

fn madt(p: &AcpiPlatform<'_>) -> Vec<u8> {
    let mut madt = MADT::new(
        OEM_ID,
        OEM_TABLE_ID,
        OEM_REVISION,
        LocalInterruptController::Address(LOCAL_APIC_ADDRESS),
    );
    for (uid, &id) in p.apic_ids.iter().enumerate() {
        // ACPI: IDs below 255 go in the Local APIC structure, larger ones in the x2APIC one.
        match u8::try_from(id) {
            Ok(id8) if id8 != 0xff && uid < 0xff => madt.add_structure(ProcessorLocalApic::new(
                uid as u8,
                id8,
                EnabledStatus::Enabled,
            )),
            _ => madt.add_structure(LocalX2Apic {
                kind: 9,
                length: 16,
                reserved: 0,
                x2apic_id: id,
                flags: 1,
                uid: uid as u32,
            }),
        }
    }
    if let Some(io) = p.ioapic {
        madt.add_structure(IoApic::new(io.id, io.address, io.gsi_base));
    }
    aml_bytes(&madt)
}

fn dsdt(console: Option<ConsoleView>) -> Vec<u8> {
    let mut dsdt = Sdt::new(*b"DSDT", 36, 6, OEM_ID, OEM_TABLE_ID, OEM_REVISION);
    // \_S5_: Package { SLP_TYPa, SLP_TYPb }; only the first is used on a hardware-reduced system.
    let s5 = aml::Name::new(
        "_S5_".into(),
        &aml::Package::new(alloc::vec![&S5_SLEEP_TYPE, &S5_SLEEP_TYPE]),
    );
    dsdt.append_slice(&aml_bytes(&s5));
    if let Some(c) = console {
        // \_SB.COM1: a PNP0501 with its ports and an extended interrupt descriptor (consumer,
        // edge, active high, exclusive) naming its GSI.
        let hid = aml::Name::new("_HID".into(), &aml::EISAName::new("PNP0501"));
        let uid = aml::Name::new("_UID".into(), &aml::ZERO);
        let ports = aml::IO::new(c.port, c.port, 1, 8);
        let irq = aml::Interrupt::new(true, true, false, false, c.gsi);
        let crs = aml::ResourceTemplate::new(alloc::vec![&ports, &irq]);
        let crs = aml::Name::new("_CRS".into(), &crs);
        let com1 = aml::Device::new("COM1".into(), alloc::vec![&hid, &uid, &crs]);
        let sb = aml::Scope::new("\\_SB_".into(), alloc::vec![&com1]);
        dsdt.append_slice(&aml_bytes(&sb));
    }
    dsdt.as_slice().to_vec()
}

fn fadt(dsdt_gpa: u64, sleep_port: u16) -> Vec<u8> {
    let mut b = FADTBuilder::new(OEM_ID, OEM_TABLE_ID, OEM_REVISION)
        .dsdt_64(dsdt_gpa)
        .flag(Flags::HwReducedAcpi)
        .flag(Flags::ResetRegSup)
        .flag(Flags::Headless)
        .flag(Flags::PwrButton)
        .flag(Flags::SlpButton);
    let reg = GAS::new(
        AddressSpace::SystemIo,
        8,
        0,
        AccessSize::ByteAccess,
        u64::from(sleep_port),
    );
    // No VGA, no MSI, no CMOS clock and (bit 1 clear) no 8042: Linux then probes none of them,
    // and the ports stay unowned.
    b.iapc_boot_arch = (IAPC_NO_VGA | IAPC_NO_MSI | IAPC_NO_CMOS_RTC).into();
    b.sleep_control_reg = reg;
    b.sleep_status_reg = reg;
    b.reset_reg = GAS::new(
        AddressSpace::SystemIo,
        8,
        0,
        AccessSize::ByteAccess,
        u64::from(sleep_port + RESET_PORT_OFFSET),
    );
    b.reset_value = RESET_VALUE;
    aml_bytes(&b.finalize())
}

/// Builds the tables for a partition, to be placed at `base` (guest-physical).
pub fn tables(base: u64, p: &AcpiPlatform<'_>) -> AcpiBlob {
    let rsdp_len = Rsdp::len();
    let xsdt_at = align16(rsdp_len);
    // XSDT: header + two 8-byte entries.
    let fadt_at = align16(xsdt_at + 36 + 2 * 8);
    let fadt_len = acpi_tables::fadt::FADT::len();
    let dsdt_at = align16(fadt_at + fadt_len);
    let dsdt = dsdt(p.console);
    let madt_at = align16(dsdt_at + dsdt.len());
    let madt = madt(p);
    let gpa = |off: usize| base + off as u64;

    let mut xsdt = XSDT::new(OEM_ID, OEM_TABLE_ID, OEM_REVISION);
    xsdt.add_entry(gpa(fadt_at));
    xsdt.add_entry(gpa(madt_at));
    let parts: [(usize, Vec<u8>); 5] = [
        (0, aml_bytes(&Rsdp::new(OEM_ID, gpa(xsdt_at)))),
        (xsdt_at, aml_bytes(&xsdt)),
        (fadt_at, fadt(gpa(dsdt_at), p.sleep_port)),
        (dsdt_at, dsdt),
        (madt_at, madt),
    ];
    let mut bytes = Vec::new();
    for (at, table) in parts {
        bytes.resize(at, 0);
        bytes.extend_from_slice(&table);
    }
    AcpiBlob { bytes }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn u32_at(b: &[u8], off: usize) -> u32 {
        u32::from_le_bytes(b[off..off + 4].try_into().unwrap())
    }

    fn u64_at(b: &[u8], off: usize) -> u64 {
        u64::from_le_bytes(b[off..off + 8].try_into().unwrap())
    }

    fn sums_to_zero(b: &[u8]) -> bool {
        b.iter().fold(0u8, |a, x| a.wrapping_add(*x)) == 0
    }

    /// The table at guest-physical `gpa` in a blob placed at `base`.
    fn table(blob: &[u8], base: u64, gpa: u64) -> &[u8] {
        let off = (gpa - base) as usize;
        let len = u32_at(blob, off + 4) as usize;
        &blob[off..off + len]
    }

    const BASE: u64 = 0xe_0000;

    fn blob(ids: &[u32], ioapic: Option<IoApicView>) -> Vec<u8> {
        tables(
            BASE,
            &AcpiPlatform {
                apic_ids: ids,
                ioapic,
                sleep_port: 0x600,
                console: Some(COM1),
            },
        )
        .bytes
    }

    /// Follows RSDP → XSDT and returns the tables it lists, checking every checksum on the way.
    fn walk(b: &[u8]) -> Vec<&[u8]> {
        assert_eq!(&b[0..8], b"RSD PTR ");
        assert!(sums_to_zero(&b[..20]), "RSDP v1 checksum");
        assert!(sums_to_zero(&b[..36]), "RSDP extended checksum");
        assert_eq!(b[15], 2, "ACPI 2.0+ RSDP");
        let xsdt = table(b, BASE, u64_at(b, 24));
        assert_eq!(&xsdt[..4], b"XSDT");
        assert!(sums_to_zero(xsdt));
        let n = (xsdt.len() - 36) / 8;
        (0..n)
            .map(|i| {
                let t = table(b, BASE, u64_at(xsdt, 36 + 8 * i));
                assert!(sums_to_zero(t), "checksum of {:?}", &t[..4]);
                t
            })
            .collect()
    }

    #[test]
    fn the_tables_chain_from_the_rsdp_with_valid_checksums() {
        let b = blob(
            &[0, 1],
            Some(IoApicView {
                id: 0,
                address: 0xfec0_0000,
                gsi_base: 0,
            }),
        );
        let t = walk(&b);
        let sigs: Vec<&[u8]> = t.iter().map(|t| &t[..4]).collect();
        assert_eq!(sigs, [b"FACP".as_slice(), b"APIC".as_slice()]);
        // FADT: hardware-reduced, DSDT through X_DSDT, sleep registers on the given port.
        let fadt = t[0];
        assert!(u32_at(fadt, 112) & (1 << 20) != 0, "HW_REDUCED_ACPI");
        let dsdt = table(&b, BASE, u64_at(fadt, 140));
        assert_eq!(&dsdt[..4], b"DSDT");
        assert!(sums_to_zero(dsdt));
        // SLEEP_CONTROL_REG is at 244: system I/O, 8 bits, port 0x600.
        assert_eq!(fadt[244], 1);
        assert_eq!(fadt[245], 8);
        assert_eq!(u64_at(fadt, 248), 0x600);
        // Flags at 112 with RESET_REG_SUP (bit 10); RESET_REG at 116: system I/O, port 0x601;
        // RESET_VALUE at 128.
        assert_ne!(u32_at(fadt, 112) & (1 << 10), 0);
        assert_eq!(fadt[116], 1);
        assert_eq!(u64_at(fadt, 120), 0x601);
        assert_eq!(fadt[128], RESET_VALUE);
        // IA-PC boot flags at 109: no 8042 (bit 1), no VGA, no MSI, no CMOS clock.
        assert_eq!(u16::from_le_bytes([fadt[109], fadt[110]]), 0b10_1100);
        // The DSDT names \_S5_.
        assert!(dsdt.windows(4).any(|w| w == b"_S5_"));
    }

    #[test]
    fn the_madt_lists_exactly_the_partitions_vcpus_and_io_apic() {
        let b = blob(
            &[0, 1, 300],
            Some(IoApicView {
                id: 2,
                address: 0xfec0_0000,
                gsi_base: 0,
            }),
        );
        let madt = walk(&b)[1];
        assert_eq!(u32_at(madt, 36), 0xfee0_0000);
        // No PCAT_COMPAT: the partition has no 8259.
        assert_eq!(u32_at(madt, 40), 0);
        let mut cpus = Vec::new();
        let mut ioapics = Vec::new();
        let mut off = 44;
        while off < madt.len() {
            let (kind, len) = (madt[off], madt[off + 1] as usize);
            match kind {
                0 => cpus.push((u32::from(madt[off + 3]), u32_at(madt, off + 4) & 1)),
                9 => cpus.push((u32_at(madt, off + 4), u32_at(madt, off + 8) & 1)),
                1 => ioapics.push((madt[off + 2], u32_at(madt, off + 4), u32_at(madt, off + 8))),
                k => panic!("unexpected MADT structure {k}"),
            }
            off += len;
        }
        assert_eq!(off, madt.len());
        assert_eq!(cpus, [(0, 1), (1, 1), (300, 1)]);
        assert_eq!(ioapics, [(2, 0xfec0_0000, 0)]);
    }

    #[test]
    fn a_partition_without_an_io_apic_gets_none_in_its_madt() {
        let b = blob(&[0], None);
        let madt = walk(&b)[1];
        assert_eq!(madt.len(), 44 + 8);
    }
}
