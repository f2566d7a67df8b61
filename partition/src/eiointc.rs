//! LoongArch: a partition's EIOINTC view and the path of its virtual device lines to a vCPU, as
//! on a 3A5000 with a 7A bridge: the console drives its line of the partition's PCH-PIC view
//! (`irqchip`), the view sends the line's vector once per rise of its unmasked level, the
//! partition's EIOINTC (`vcpu::irqchip::eiointc`, reached through IOCSR exits) makes it pending
//! on the vCPU the guest routed it to, and that vCPU's hardware line stays raised
//! ([`Partition::eiointc_lines`], the exit handler's line word) until the guest acknowledges the
//! vector in its ISR. The partition's physical device lines take the same path from the view on
//! (`device_irq`). A Linux partition and any partition owning device lines get the EIOINTC view;
//! the other test guests keep the IOCSR space outside their IPI block refused.

use crate::arch::PartitionArch;
use crate::irqchip::{self, Chip};
use crate::Partition;
use alloc::vec::Vec;
use vcpu::irqchip::eiointc::{Dropped, Eiointc};

impl<A: PartitionArch> Partition<A> {
    /// A virtual device of the partition drives line `line` of its controller view at `level`,
    /// on CPU `cpu`.
    pub fn drive_virtual_line(&self, line: u32, level: bool, cpu: usize) {
        let own = irqchip::ownership(self);
        let sends = match &mut *self.irqchip.lock() {
            Chip::PchPic(c) => c.set_level(line, level, &own),
            Chip::IoApic(_) => Vec::new(),
        };
        self.send_vectors(&sends, cpu);
    }

    /// A physical device line of the partition routed through its PCH-PIC view fired, on CPU
    /// `cpu`: one rise of the line in the view. The hypervisor keeps a level-triggered line
    /// masked from its interrupt until the guest unmasks it in the view again, so each rise is
    /// one interrupt taken; a rise the view drops (the guest had masked the line meanwhile)
    /// comes again when the guest unmasks a line still asserted.
    pub fn pulse_device_line(&self, line: u32, cpu: usize) {
        self.drive_virtual_line(line, true, cpu);
        self.drive_virtual_line(line, false, cpu);
    }

    /// Vectors the PCH-PIC view sent arrive at the EIOINTC; a vCPU they become pending on that
    /// runs on another CPU is kicked, so it sees its line at its next entry.
    pub fn send_vectors(&self, vectors: &[u8], cpu: usize) {
        for &v in vectors {
            let target = self.eiointc.lock().raise(v);
            if let Some(slot) = target.and_then(|t| self.vcpus.get(t as usize)) {
                if slot.cpu != cpu {
                    self.kick(slot.cpu);
                }
            }
        }
    }

    /// The CPU hardware lines (bit n: HWIn) the EIOINTC raises on vCPU `vcpu`.
    pub fn eiointc_lines(&self, vcpu: u32) -> u8 {
        self.eiointc.lock().lines(vcpu)
    }

    /// vCPU `vcpu`'s IOCSR read at `addr`, if it is the EIOINTC's.
    pub fn eiointc_read(&self, vcpu: u32, addr: u64, size: u32) -> Option<u64> {
        self.eiointc.lock().read(vcpu, addr, size)
    }

    /// vCPU `vcpu`'s IOCSR write at `addr`, if it is the EIOINTC's; what the view dropped is
    /// said on the console (a route outside the partition, MISC_FUNC bits not its own).
    pub fn eiointc_write(&self, vcpu: u32, addr: u64, size: u32, value: u64) -> Option<()> {
        let dropped = self.eiointc.lock().write(vcpu, addr, size, value)?;
        for d in dropped {
            match d {
                Dropped::Route { vector, byte } => say!(A,
                    "partition {}: EIOINTC route refused: vector {vector} byte {byte:#x} names a core outside its {} vCPUs",
                    self.name(),
                    self.vcpus.len()
                ),
                Dropped::MiscFunc => say!(A,
                    "partition {}: EIOINTC write dropped at IOCSR {addr:#x}: only EXT_IOI_EN is the partition's",
                    self.name()
                ),
            }
        }
        Some(())
    }

    /// A run ended: the EIOINTC is reset with the controller view.
    pub fn reset_eiointc(&self) {
        *self.eiointc.lock() = Eiointc::new(self.vcpus.len() as u32);
    }
}
