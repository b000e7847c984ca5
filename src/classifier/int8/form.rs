//! Which execution form runs, chosen once at load from the CPU and `INFERENCE_FORM`.
//!
//! tract's int8 products are fast only where the CPU multiplies int8 vectors natively:
//! AVX-512 VNNI or AVX-VNNI on x86_64 (`avx512vnni_mmm_i32_16x16`, `avxvnni_mmm_i32_8x8`) and
//! `dotprod` (SDOT) on arm64 (`arm64simd_mmm_i32_8x8_dot`; every Graviton has it). Elsewhere
//! (an AVX2-only x86, measured about 50× slower than f32 in int8) the f32 form runs.

use std::fmt;
use std::str::FromStr;

/// How the shipped int8 weights are run.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum InferenceForm {
    /// Weights widened to f32 at load; f32 products.
    F32,
    /// Weights kept in int8; activations quantized per row on the fly; int8 products.
    Int8,
}

impl InferenceForm {
    pub fn as_str(self) -> &'static str {
        match self {
            InferenceForm::F32 => "f32",
            InferenceForm::Int8 => "int8",
        }
    }
}

impl fmt::Display for InferenceForm {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// `INFERENCE_FORM`: `auto` (the default) picks by the CPU; `f32` or `int8` forces one.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum FormChoice {
    #[default]
    Auto,
    Forced(InferenceForm),
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("INFERENCE_FORM={0:?}: expected auto, f32 or int8")]
pub struct FormChoiceError(pub String);

impl FromStr for FormChoice {
    type Err = FormChoiceError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s.trim().to_ascii_lowercase().as_str() {
            "" | "auto" => Ok(FormChoice::Auto),
            "f32" => Ok(FormChoice::Forced(InferenceForm::F32)),
            "int8" => Ok(FormChoice::Forced(InferenceForm::Int8)),
            _ => Err(FormChoiceError(s.to_string())),
        }
    }
}

/// What the CPU offers for int8 products, as far as the choice needs to know.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Cpu {
    pub arch: &'static str,
    /// The fast int8 dot-product feature found (`avx512vnni`, `avxvnni`, `dotprod`), if any.
    pub int8_dot: Option<&'static str>,
}

impl Cpu {
    /// The CPU this process runs on (features detected at run time, not compiled in).
    pub fn detect() -> Self {
        Cpu {
            arch: std::env::consts::ARCH,
            int8_dot: detect_int8_dot(),
        }
    }
}

#[cfg(target_arch = "x86_64")]
fn detect_int8_dot() -> Option<&'static str> {
    if is_x86_feature_detected!("avx512f") && is_x86_feature_detected!("avx512vnni") {
        Some("avx512vnni")
    } else if is_x86_feature_detected!("avxvnni") {
        Some("avxvnni")
    } else {
        None
    }
}

#[cfg(target_arch = "aarch64")]
fn detect_int8_dot() -> Option<&'static str> {
    std::arch::is_aarch64_feature_detected!("dotprod").then_some("dotprod")
}

#[cfg(not(any(target_arch = "x86_64", target_arch = "aarch64")))]
fn detect_int8_dot() -> Option<&'static str> {
    None
}

/// The form that runs and why, for `/` and the start-up log.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Selection {
    pub form: InferenceForm,
    pub reason: String,
}

impl Selection {
    pub fn choose(choice: FormChoice, cpu: Cpu) -> Self {
        match (choice, cpu.int8_dot) {
            (FormChoice::Forced(form), _) => Selection {
                form,
                reason: format!("INFERENCE_FORM={form}"),
            },
            (FormChoice::Auto, Some(feature)) => Selection {
                form: InferenceForm::Int8,
                reason: format!(
                    "auto: this {} CPU has {feature} (fast int8 dot products)",
                    cpu.arch
                ),
            },
            (FormChoice::Auto, None) => Selection {
                form: InferenceForm::F32,
                reason: format!(
                    "auto: this {} CPU has no fast int8 dot product (AVX-512 VNNI, AVX-VNNI or \
                     dotprod), where tract's int8 products are slower than f32",
                    cpu.arch
                ),
            },
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_the_setting() {
        assert_eq!("".parse(), Ok(FormChoice::Auto));
        assert_eq!(" Auto ".parse(), Ok(FormChoice::Auto));
        assert_eq!("f32".parse(), Ok(FormChoice::Forced(InferenceForm::F32)));
        assert_eq!("INT8".parse(), Ok(FormChoice::Forced(InferenceForm::Int8)));
        assert!("fp16".parse::<FormChoice>().is_err());
    }

    #[test]
    fn auto_follows_the_int8_dot_product() {
        let cases = [
            ("x86_64", Some("avx512vnni"), InferenceForm::Int8),
            ("x86_64", Some("avxvnni"), InferenceForm::Int8),
            ("aarch64", Some("dotprod"), InferenceForm::Int8),
            ("x86_64", None, InferenceForm::F32),
            ("aarch64", None, InferenceForm::F32),
        ];
        for (arch, int8_dot, form) in cases {
            let chosen = Selection::choose(FormChoice::Auto, Cpu { arch, int8_dot });
            assert_eq!(chosen.form, form, "{arch} {int8_dot:?}");
            assert!(chosen.reason.starts_with("auto: "), "{}", chosen.reason);
        }
    }

    #[test]
    fn a_forced_form_wins_over_the_cpu() {
        let avx2 = Cpu {
            arch: "x86_64",
            int8_dot: None,
        };
        let forced = Selection::choose(FormChoice::Forced(InferenceForm::Int8), avx2);
        assert_eq!(forced.form, InferenceForm::Int8);
        assert_eq!(forced.reason, "INFERENCE_FORM=int8");
    }
}
