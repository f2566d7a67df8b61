//! How each of one partition's device lines is routed now, and what an interrupt of it becomes:
//! the decisions between a partition's routing requests and the physical controller, kept apart
//! from the hardware so they are tested on the host. A line is routed in one of two ways, the
//! last one used holding: the `IRQ_ROUTE` hypercall (it then arrives as a `Device(line)` upcall)
//! or the partition's controller view (it then arrives as the vector the view's route names, if
//! that route is still unmasked and still names the same vCPU when the interrupt comes). Shared
//! by every vCPU of the partition (atomics), since any of them may route a line and any CPU of
//! the partition may take its interrupt.

use super::Route;
use alloc::vec::Vec;
use core::sync::atomic::{AtomicU32, AtomicU8, Ordering};

/// How a line's current route was made.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[repr(u8)]
pub enum Via {
    /// Not routed in this run: the line is masked.
    Nothing = 0,
    /// The `IRQ_ROUTE` hypercall: upcalls.
    Hypercall = 1,
    /// The controller view: vectors.
    Controller = 2,
}

impl Via {
    fn from_u8(v: u8) -> Self {
        match v {
            1 => Self::Hypercall,
            2 => Self::Controller,
            _ => Self::Nothing,
        }
    }
}

/// What an interrupt of a line becomes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Delivery {
    /// Nobody's now (not the partition's line, unrouted, or masked or re-routed while it was on
    /// its way, as a real controller would not have sent it): dropped.
    Drop,
    /// A `Device(line)` upcall on vCPU `vcpu`.
    Upcall { vcpu: u32 },
    /// Through the controller view: `vector` on vCPU `vcpu` (the arch raises it its own way).
    Controller { vcpu: u32, vector: u8 },
}

/// One partition's lines (`irqs` of its board-file entry) and their routes.
pub struct LineRoutes {
    lines: Vec<u32>,
    vcpu: Vec<AtomicU32>,
    via: Vec<AtomicU8>,
    /// The route last said on the console, per line (`1 << 31 | vcpu << 8 | vector`, 0: none).
    said: Vec<AtomicU32>,
}

impl LineRoutes {
    /// No line routed.
    pub fn new(lines: &[u32]) -> Self {
        Self {
            lines: lines.to_vec(),
            vcpu: lines.iter().map(|_| AtomicU32::new(0)).collect(),
            via: lines.iter().map(|_| AtomicU8::new(0)).collect(),
            said: lines.iter().map(|_| AtomicU32::new(0)).collect(),
        }
    }

    /// The partition's lines, in board-file order.
    pub fn lines(&self) -> &[u32] {
        &self.lines
    }

    fn position(&self, line: u32) -> Option<usize> {
        self.lines.iter().position(|&l| l == line)
    }

    /// `IRQ_ROUTE` routed the line at `pos` (of [`LineRoutes::lines`]) to vCPU `vcpu`.
    pub fn set_by_hypercall(&self, pos: usize, vcpu: u32) {
        self.vcpu[pos].store(vcpu, Ordering::SeqCst);
        self.via[pos].store(Via::Hypercall as u8, Ordering::SeqCst);
    }

    /// The controller view accepted route `r`; false if its line is not the partition's (a
    /// virtual device's line, which reaches no physical controller).
    pub fn set_by_controller(&self, r: &Route) -> bool {
        let Some(pos) = self.position(r.line) else {
            return false;
        };
        self.vcpu[pos].store(r.vcpu, Ordering::SeqCst);
        self.via[pos].store(Via::Controller as u8, Ordering::SeqCst);
        true
    }

    /// How `line` is routed now.
    pub fn via(&self, line: u32) -> Via {
        self.position(line).map_or(Via::Nothing, |pos| {
            Via::from_u8(self.via[pos].load(Ordering::SeqCst))
        })
    }

    /// What an interrupt of `line` becomes, given the view's current route of it (`view`).
    pub fn deliver(&self, line: u32, view: Option<Route>) -> Delivery {
        let Some(pos) = self.position(line) else {
            return Delivery::Drop;
        };
        let vcpu = self.vcpu[pos].load(Ordering::SeqCst);
        match Via::from_u8(self.via[pos].load(Ordering::SeqCst)) {
            Via::Nothing => Delivery::Drop,
            Via::Hypercall => Delivery::Upcall { vcpu },
            Via::Controller => match view {
                Some(r) if !r.masked && r.vcpu == vcpu => Delivery::Controller {
                    vcpu,
                    vector: r.vector,
                },
                _ => Delivery::Drop,
            },
        }
    }

    /// The level-triggered lines routed through the view as `vector` and unmasked, which a
    /// guest's end of `vector` lets fire again; `view(line)` is the view's route of each line.
    pub fn ended_by(&self, vector: u8, view: impl Fn(u32) -> Option<Route>) -> Vec<u32> {
        self.lines
            .iter()
            .enumerate()
            .filter(|&(pos, _)| Via::from_u8(self.via[pos].load(Ordering::SeqCst)) == Via::Controller)
            .filter(|&(_, &line)| {
                matches!(view(line), Some(r) if r.level && !r.masked && r.vector == vector)
            })
            .map(|(_, &line)| line)
            .collect()
    }

    /// Whether `r` names another vCPU or vector than the route of its line last said (and
    /// records it as said); a line that is not the partition's is always new.
    pub fn said_anew(&self, r: &Route) -> bool {
        let Some(pos) = self.position(r.line) else {
            return true;
        };
        let key = 1 << 31 | r.vcpu << 8 | u32::from(r.vector);
        self.said[pos].swap(key, Ordering::Relaxed) != key
    }

    /// A run ended: every line unrouted again; returns the lines, for the caller to mask.
    pub fn reset(&self) -> &[u32] {
        for pos in 0..self.lines.len() {
            self.via[pos].store(Via::Nothing as u8, Ordering::SeqCst);
            self.vcpu[pos].store(0, Ordering::SeqCst);
            self.said[pos].store(0, Ordering::Relaxed);
        }
        &self.lines
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn route(line: u32, vcpu: u32, vector: u8, masked: bool, level: bool) -> Route {
        Route {
            line,
            vcpu,
            vector,
            masked,
            level,
            active_low: false,
        }
    }

    #[test]
    fn an_unrouted_or_foreign_line_is_dropped() {
        let r = LineRoutes::new(&[3, 6]);
        assert_eq!(r.deliver(3, None), Delivery::Drop);
        assert_eq!(
            r.deliver(4, Some(route(4, 0, 0x40, false, false))),
            Delivery::Drop
        );
        assert_eq!(r.via(3), Via::Nothing);
        assert!(
            !r.set_by_controller(&route(2, 0, 0x40, false, false)),
            "a virtual line"
        );
    }

    #[test]
    fn a_hypercall_route_is_an_upcall_on_its_vcpu() {
        let r = LineRoutes::new(&[3, 6]);
        r.set_by_hypercall(1, 1);
        assert_eq!(r.via(6), Via::Hypercall);
        assert_eq!(r.deliver(6, None), Delivery::Upcall { vcpu: 1 });
        assert_eq!(r.deliver(3, None), Delivery::Drop);
    }

    #[test]
    fn a_view_route_delivers_its_vector_only_while_it_still_holds() {
        let r = LineRoutes::new(&[3]);
        let to1 = route(3, 1, 0x42, false, true);
        assert!(r.set_by_controller(&to1));
        assert_eq!(
            r.deliver(3, Some(to1)),
            Delivery::Controller {
                vcpu: 1,
                vector: 0x42
            }
        );
        // Masked, or moved to another vCPU, while the interrupt was on its way: dropped.
        assert_eq!(
            r.deliver(3, Some(route(3, 1, 0x42, true, true))),
            Delivery::Drop
        );
        assert_eq!(
            r.deliver(3, Some(route(3, 0, 0x42, false, true))),
            Delivery::Drop
        );
        assert_eq!(r.deliver(3, None), Delivery::Drop);
    }

    #[test]
    fn the_last_way_used_holds() {
        let r = LineRoutes::new(&[3]);
        r.set_by_controller(&route(3, 1, 0x42, false, false));
        r.set_by_hypercall(0, 0);
        assert_eq!(
            r.deliver(3, Some(route(3, 1, 0x42, false, false))),
            Delivery::Upcall { vcpu: 0 }
        );
        r.set_by_controller(&route(3, 1, 0x42, false, false));
        assert_eq!(r.via(3), Via::Controller);
    }

    #[test]
    fn an_end_of_a_vector_releases_only_its_unmasked_level_view_lines() {
        let r = LineRoutes::new(&[3, 5, 6, 7]);
        let view = |line| match line {
            3 => Some(route(3, 1, 0x42, false, true)),
            5 => Some(route(5, 1, 0x42, false, false)), // edge
            6 => Some(route(6, 1, 0x42, true, true)),   // masked
            7 => Some(route(7, 1, 0x43, false, true)),  // another vector
            _ => None,
        };
        for line in [3, 5, 6, 7] {
            r.set_by_controller(&view(line).unwrap());
        }
        assert_eq!(r.ended_by(0x42, view), [3]);
        // A line routed by hypercall is never ended by a vector.
        r.set_by_hypercall(0, 1);
        assert!(r.ended_by(0x42, view).is_empty());
    }

    #[test]
    fn a_route_is_said_once_until_its_target_or_vector_changes() {
        let r = LineRoutes::new(&[3]);
        assert!(r.said_anew(&route(3, 1, 0x13, true, true)));
        assert!(
            !r.said_anew(&route(3, 1, 0x13, false, true)),
            "a mask toggle"
        );
        assert!(r.said_anew(&route(3, 0, 0x13, false, true)));
        assert!(r.said_anew(&route(3, 0, 0x14, false, true)));
        assert!(r.said_anew(&route(9, 0, 0x14, false, true)), "not its line");
    }

    #[test]
    fn a_reset_unroutes_every_line_and_names_them_for_masking() {
        let r = LineRoutes::new(&[3, 6]);
        r.set_by_hypercall(0, 1);
        r.set_by_controller(&route(6, 1, 0x16, false, true));
        r.said_anew(&route(6, 1, 0x16, false, true));
        assert_eq!(r.reset(), [3, 6]);
        assert_eq!(r.deliver(3, None), Delivery::Drop);
        assert_eq!(
            r.deliver(6, Some(route(6, 1, 0x16, false, true))),
            Delivery::Drop
        );
        assert!(
            r.said_anew(&route(6, 1, 0x16, false, true)),
            "said again in the next run"
        );
    }
}
