//! The device tree of a Linux partition, written from the partition alone: its RAM, its vCPUs,
//! its interrupt path (CPU interrupt controller, EIOINTC on hardware line
//! [`super::EIOINTC_HWI`], PCH-PIC), the console UART on PCH-PIC line [`super::UART_LINE`], and
//! the power register block with Linux's `syscon-poweroff` and `syscon-reboot` nodes. Whatever
//! the partition does not own is absent, so Linux never probes it.

use super::power;
use alloc::vec::Vec;
use vm_fdt::{Error, FdtWriter};

/// The partition as the device tree describes it.
#[derive(Clone, Copy, Debug)]
pub struct Platform<'a> {
    /// RAM ranges, `(start, size)`.
    pub ram: &'a [(u64, u64)],
    /// vCPUs; vCPU `i` is CPU `i` (the guest CPUID CSR shows the same number).
    pub vcpus: u32,
    /// Whether the partition has its virtual console UART.
    pub console: bool,
    /// Where the initrd is, `(start, end)`.
    pub initrd: Option<(u64, u64)>,
}

const CPU_INTC_PHANDLE: u32 = 1;
const POWER_PHANDLE: u32 = 2;
const EIOINTC_PHANDLE: u32 = 3;
const PCH_PIC_PHANDLE: u32 = 4;
/// The device-tree interrupt type of a level-triggered, active-high line.
const LEVEL_HIGH: u32 = 4;

/// The flattened device tree of `p`.
pub fn device_tree(p: &Platform) -> Result<Vec<u8>, Error> {
    let mut w = FdtWriter::new()?;
    let root = w.begin_node("")?;
    w.property_string("compatible", "septum,loongarch-partition")?;
    w.property_string("model", "Septum LoongArch partition")?;
    w.property_u32("#address-cells", 2)?;
    w.property_u32("#size-cells", 2)?;

    let chosen = w.begin_node("chosen")?;
    if p.console {
        w.property_string("stdout-path", &alloc::format!("/serial@{:x}", super::UART))?;
    }
    if let Some((start, end)) = p.initrd {
        w.property_u64("linux,initrd-start", start)?;
        w.property_u64("linux,initrd-end", end)?;
    }
    w.end_node(chosen)?;

    for &(start, size) in p.ram {
        let m = w.begin_node(&alloc::format!("memory@{start:x}"))?;
        w.property_string("device_type", "memory")?;
        w.property_array_u64("reg", &[start, size])?;
        w.end_node(m)?;
    }

    let cpus = w.begin_node("cpus")?;
    w.property_u32("#address-cells", 1)?;
    w.property_u32("#size-cells", 0)?;
    for i in 0..p.vcpus {
        let c = w.begin_node(&alloc::format!("cpu@{i}"))?;
        w.property_string("device_type", "cpu")?;
        w.property_string("compatible", "loongson,la464")?;
        w.property_u32("reg", i)?;
        w.end_node(c)?;
    }
    w.end_node(cpus)?;

    let intc = w.begin_node("cpuic")?;
    w.property_string("compatible", "loongson,cpu-interrupt-controller")?;
    w.property_null("interrupt-controller")?;
    w.property_u32("#interrupt-cells", 1)?;
    w.property_phandle(CPU_INTC_PHANDLE)?;
    w.end_node(intc)?;

    // The EIOINTC lives in IOCSR space; the address is the node name's only.
    let eio = w.begin_node("interrupt-controller@1400")?;
    w.property_string("compatible", "loongson,ls2k2000-eiointc")?;
    w.property_array_u64("reg", &[0x1400, 0x800])?;
    w.property_null("interrupt-controller")?;
    w.property_u32("#interrupt-cells", 1)?;
    w.property_u32("interrupt-parent", CPU_INTC_PHANDLE)?;
    // CPU interrupt controller inputs are ESTAT.IS bits: HWIn is n + 2.
    w.property_u32("interrupts", super::EIOINTC_HWI + 2)?;
    w.property_phandle(EIOINTC_PHANDLE)?;
    w.end_node(eio)?;

    let pic = w.begin_node(&alloc::format!("interrupt-controller@{:x}", super::PCH_PIC))?;
    w.property_string("compatible", "loongson,pch-pic-1.0")?;
    w.property_array_u64("reg", &[super::PCH_PIC, super::PCH_PIC_SIZE])?;
    w.property_null("interrupt-controller")?;
    w.property_u32("#interrupt-cells", 2)?;
    // Line n sends vector n.
    w.property_u32("loongson,pic-base-vec", 0)?;
    w.property_u32("interrupt-parent", EIOINTC_PHANDLE)?;
    w.property_phandle(PCH_PIC_PHANDLE)?;
    w.end_node(pic)?;

    if p.console {
        let s = w.begin_node(&alloc::format!("serial@{:x}", super::UART))?;
        w.property_string("compatible", "ns16550a")?;
        w.property_array_u64("reg", &[super::UART, super::UART_SIZE])?;
        w.property_u32("clock-frequency", super::UART_CLOCK)?;
        w.property_u32("interrupt-parent", PCH_PIC_PHANDLE)?;
        w.property_array_u32("interrupts", &[super::UART_LINE, LEVEL_HIGH])?;
        w.end_node(s)?;
    }

    let regs = w.begin_node(&alloc::format!("power@{:x}", super::POWER))?;
    w.property_string("compatible", "syscon")?;
    w.property_array_u64("reg", &[super::POWER, power::SIZE])?;
    w.property_u32("reg-io-width", 1)?;
    w.property_phandle(POWER_PHANDLE)?;
    w.end_node(regs)?;
    for (name, compatible, offset, value) in [
        (
            "poweroff",
            "syscon-poweroff",
            power::SLEEP_CONTROL,
            power::POWER_OFF_VALUE,
        ),
        ("reboot", "syscon-reboot", power::RESET, power::RESET_VALUE),
    ] {
        let n = w.begin_node(name)?;
        w.property_string("compatible", compatible)?;
        w.property_u32("regmap", POWER_PHANDLE)?;
        w.property_u32("offset", offset as u32)?;
        w.property_u32("value", u32::from(value))?;
        w.end_node(n)?;
    }

    w.end_node(root)?;
    w.finish()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tree(console: bool) -> Vec<u8> {
        device_tree(&Platform {
            ram: &[(0, 256 << 20)],
            vcpus: 2,
            console,
            initrd: Some((0xf00_0000, 0xf01_0000)),
        })
        .unwrap()
    }

    #[test]
    fn the_tree_describes_exactly_the_partition() {
        let bytes = tree(true);
        let t = fdt::Fdt::new(&bytes).unwrap();
        assert_eq!(t.cpus().count(), 2);
        let mem: Vec<_> = t.memory().regions().collect();
        assert_eq!(mem.len(), 1);
        assert_eq!(mem[0].size, Some(256 << 20));
        let uart = t.find_compatible(&["ns16550a"]).unwrap();
        let reg = uart.reg().unwrap().next().unwrap();
        assert_eq!(reg.starting_address as u64, super::super::UART);
        // Line 2, level high (two cells, as the PCH-PIC's #interrupt-cells says).
        assert_eq!(
            uart.property("interrupts").map(|p| p.value),
            Some([0, 0, 0, 2, 0, 0, 0, 4].as_slice())
        );
        let pic = t.find_compatible(&["loongson,pch-pic-1.0"]).unwrap();
        assert_eq!(
            uart.interrupt_parent().map(|n| n.name),
            Some(pic.name),
            "the UART is a PCH-PIC line"
        );
        let eio = t.find_compatible(&["loongson,ls2k2000-eiointc"]).unwrap();
        assert_eq!(pic.interrupt_parent().map(|n| n.name), Some(eio.name));
        assert_eq!(eio.interrupts().unwrap().next(), Some(3), "EIOINTC on HWI1");
        let off = t.find_compatible(&["syscon-poweroff"]).unwrap();
        assert_eq!(off.property("value").and_then(|v| v.as_usize()), Some(0x34));
        let chosen = t.chosen();
        assert_eq!(chosen.stdout().map(|n| n.name), Some("serial@1fe001e0"));
        let initrd = t.find_node("/chosen").unwrap();
        assert_eq!(
            initrd
                .property("linux,initrd-start")
                .and_then(|v| v.as_usize()),
            Some(0xf00_0000)
        );
        // Nothing the partition does not own.
        for absent in ["loongson,pch-msi-1.0", "pci-host-ecam-generic"] {
            assert!(t.find_compatible(&[absent]).is_none(), "{absent}");
        }
    }

    #[test]
    fn without_a_console_there_is_no_uart() {
        let bytes = tree(false);
        let t = fdt::Fdt::new(&bytes).unwrap();
        assert!(t.find_compatible(&["ns16550a"]).is_none());
    }
}
