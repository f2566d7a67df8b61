//! What CPUID says about this CPU, boiled down to what the hypervisor reports and decides on: who
//! made it, which model, and which hardware virtualization (Intel VMX, AMD SVM with nested paging)
//! it offers. The leaves themselves are read through `raw-cpuid`.

use raw_cpuid::CpuId;

/// A CPU's identity and the features the hypervisor cares about.
#[derive(Clone, Copy, Debug)]
pub struct CpuSummary {
    vendor: [u8; 12],
    vendor_len: usize,
    brand: [u8; 48],
    brand_len: usize,
    /// Display family (base plus extended family).
    pub family: u8,
    /// Display model (base plus extended model).
    pub model: u8,
    /// Stepping.
    pub stepping: u8,
    /// The initial local APIC ID of the CPU that ran CPUID.
    pub apic_id: u8,
    /// Intel VMX (CPUID.1:ECX.VMX).
    pub vmx: bool,
    /// AMD SVM (CPUID.8000_0001:ECX.SVM).
    pub svm: bool,
    /// AMD nested paging (CPUID.8000_000A:EDX.NP); only meaningful with `svm`.
    pub nested_paging: bool,
    /// x2APIC mode is available.
    pub x2apic: bool,
    /// 1 GiB pages in ordinary page tables.
    pub gib_pages: bool,
}

/// Copies `s` into a fixed buffer, cutting it at the buffer's length.
fn copy_str<const N: usize>(s: &str) -> ([u8; N], usize) {
    let mut buf = [0u8; N];
    let len = s.len().min(N);
    buf[..len].copy_from_slice(&s.as_bytes()[..len]);
    (buf, len)
}

impl CpuSummary {
    /// Reads CPUID on the calling CPU.
    pub fn read() -> Self {
        let cpuid = CpuId::new();
        let (vendor, vendor_len) = copy_str(
            cpuid
                .get_vendor_info()
                .as_ref()
                .map_or("unknown", |v| v.as_str()),
        );
        let brand_info = cpuid.get_processor_brand_string();
        let (brand, brand_len) = copy_str(
            brand_info
                .as_ref()
                .map_or("(no brand string)", |b| b.as_str().trim()),
        );
        let features = cpuid.get_feature_info();
        let ext = cpuid.get_extended_processor_and_feature_identifiers();
        let svm = ext.as_ref().is_some_and(|e| e.has_svm());
        let nested_paging = svm && cpuid.get_svm_info().is_some_and(|s| s.has_nested_paging());
        Self {
            vendor,
            vendor_len,
            brand,
            brand_len,
            family: features.as_ref().map_or(0, |f| f.family_id()),
            model: features.as_ref().map_or(0, |f| f.model_id()),
            stepping: features.as_ref().map_or(0, |f| f.stepping_id()),
            apic_id: features.as_ref().map_or(0, |f| f.initial_local_apic_id()),
            vmx: features.as_ref().is_some_and(|f| f.has_vmx()),
            svm,
            nested_paging,
            x2apic: features.as_ref().is_some_and(|f| f.has_x2apic()),
            gib_pages: ext.as_ref().is_some_and(|e| e.has_1gib_pages()),
        }
    }

    /// The vendor string ("GenuineIntel", "AuthenticAMD", ...).
    pub fn vendor(&self) -> &str {
        core::str::from_utf8(&self.vendor[..self.vendor_len]).unwrap_or("?")
    }

    /// The brand string, trimmed.
    pub fn brand(&self) -> &str {
        core::str::from_utf8(&self.brand[..self.brand_len]).unwrap_or("?")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn copy_str_cuts_at_capacity() {
        let (buf, len) = copy_str::<4>("abcdef");
        assert_eq!((&buf, len), (b"abcd", 4));
        let (buf, len) = copy_str::<8>("ab");
        assert_eq!((&buf[..len], len), (&b"ab"[..], 2));
    }
}
