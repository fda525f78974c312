//! The few distribution functions the estimator needs: Poisson tail probabilities (through the
//! regularised incomplete gamma function), the normal distribution and its quantile, and R's
//! type-8 sample quantile (the one the published BCa intervals use).

/// ln Γ(x) for x > 0 (Lanczos, g = 7, nine terms: about 15 significant digits).
pub fn ln_gamma(x: f64) -> f64 {
    const G: [f64; 9] = [
        0.999_999_999_999_809_9,
        676.520_368_121_885_1,
        -1_259.139_216_722_402_8,
        771.323_428_777_653_1,
        -176.615_029_162_140_6,
        12.507_343_278_686_905,
        -0.138_571_095_265_720_12,
        9.984_369_578_019_572e-6,
        1.505_632_735_149_311_6e-7,
    ];
    if x < 0.5 {
        let pi = std::f64::consts::PI;
        return (pi / (pi * x).sin()).ln() - ln_gamma(1.0 - x);
    }
    let x = x - 1.0;
    let mut a = G[0];
    let t = x + 7.5;
    for (i, g) in G.iter().enumerate().skip(1) {
        a += g / (x + i as f64);
    }
    0.5 * (2.0 * std::f64::consts::PI).ln() + (x + 0.5) * t.ln() - t + a.ln()
}

/// The regularised lower incomplete gamma function P(a, x), and its complement Q(a, x).
fn gamma_pq(a: f64, x: f64) -> (f64, f64) {
    if x <= 0.0 {
        return (0.0, 1.0);
    }
    let lead = a * x.ln() - x - ln_gamma(a);
    if x < a + 1.0 {
        // Series.
        let (mut sum, mut term, mut n) = (1.0 / a, 1.0 / a, a);
        for _ in 0..10_000 {
            n += 1.0;
            term *= x / n;
            sum += term;
            if term.abs() < sum.abs() * 1e-16 {
                break;
            }
        }
        let p = (sum.ln() + lead).exp();
        (p, 1.0 - p)
    } else {
        // Continued fraction (modified Lentz).
        let tiny = 1e-300;
        let mut b = x + 1.0 - a;
        let mut c = 1.0 / tiny;
        let mut d = 1.0 / b;
        let mut h = d;
        for i in 1..10_000 {
            let an = -(i as f64) * (i as f64 - a);
            b += 2.0;
            d = an * d + b;
            if d.abs() < tiny {
                d = tiny;
            }
            c = b + an / c;
            if c.abs() < tiny {
                c = tiny;
            }
            d = 1.0 / d;
            let delta = d * c;
            h *= delta;
            if (delta - 1.0).abs() < 1e-16 {
                break;
            }
        }
        let q = (h.ln() + lead).exp();
        (1.0 - q, q)
    }
}

/// P(X ≤ n) for X ~ Poisson(λ).
pub fn poisson_le(n: f64, lambda: f64) -> f64 {
    if n < 0.0 {
        return 0.0;
    }
    if lambda <= 0.0 {
        return 1.0;
    }
    gamma_pq(n.floor() + 1.0, lambda).1
}

/// P(X ≥ n) for X ~ Poisson(λ).
pub fn poisson_ge(n: f64, lambda: f64) -> f64 {
    if n <= 0.0 {
        return 1.0;
    }
    if lambda <= 0.0 {
        return 0.0;
    }
    gamma_pq(n.ceil(), lambda).0
}

/// Φ(x), the standard normal distribution function.
pub fn normal_cdf(x: f64) -> f64 {
    if x.is_nan() {
        return f64::NAN;
    }
    let tail = 0.5 * gamma_pq(0.5, x * x / 2.0).1;
    if x < 0.0 { tail } else { 1.0 - tail }
}

/// Φ⁻¹(p): Acklam's rational approximation, refined by one Halley step (full double precision).
pub fn normal_quantile(p: f64) -> f64 {
    if p <= 0.0 {
        return f64::NEG_INFINITY;
    }
    if p >= 1.0 {
        return f64::INFINITY;
    }
    const A: [f64; 6] = [
        -3.969_683_028_665_376e1,
        2.209_460_984_245_205e2,
        -2.759_285_104_469_687e2,
        1.383_577_518_672_69e2,
        -3.066_479_806_614_716e1,
        2.506_628_277_459_239,
    ];
    const B: [f64; 5] = [
        -5.447_609_879_822_406e1,
        1.615_858_368_580_409e2,
        -1.556_989_798_598_866e2,
        6.680_131_188_771_972e1,
        -1.328_068_155_288_572e1,
    ];
    const C: [f64; 6] = [
        -7.784_894_002_430_293e-3,
        -3.223_964_580_411_365e-1,
        -2.400_758_277_161_838,
        -2.549_732_539_343_734,
        4.374_664_141_464_968,
        2.938_163_982_698_783,
    ];
    const D: [f64; 4] = [
        7.784_695_709_041_462e-3,
        3.224_671_290_700_398e-1,
        2.445_134_137_142_996,
        3.754_408_661_907_416,
    ];
    let tail = |q: f64| {
        (((((C[0] * q + C[1]) * q + C[2]) * q + C[3]) * q + C[4]) * q + C[5])
            / ((((D[0] * q + D[1]) * q + D[2]) * q + D[3]) * q + 1.0)
    };
    let low = 0.024_25;
    let x = if p < low {
        tail((-2.0 * p.ln()).sqrt())
    } else if p > 1.0 - low {
        -tail((-2.0 * (1.0 - p).ln()).sqrt())
    } else {
        let q = p - 0.5;
        let r = q * q;
        (((((A[0] * r + A[1]) * r + A[2]) * r + A[3]) * r + A[4]) * r + A[5]) * q
            / (((((B[0] * r + B[1]) * r + B[2]) * r + B[3]) * r + B[4]) * r + 1.0)
    };
    let e = normal_cdf(x) - p;
    let u = e * (2.0 * std::f64::consts::PI).sqrt() * (x * x / 2.0).exp();
    x - u / (1.0 + x * u / 2.0)
}

/// R's `quantile(x, q, type = 8)` (median-unbiased) of a sample; `sorted` ascending.
pub fn quantile_type8(sorted: &[f64], q: f64) -> f64 {
    let n = sorted.len();
    if n == 0 {
        return f64::NAN;
    }
    let h = 1.0 / 3.0 + q * (n as f64 + 1.0 / 3.0);
    let fuzz = 4.0 * f64::EPSILON;
    let j = (h + fuzz).floor();
    let mut g = h - j;
    if g.abs() < fuzz {
        g = 0.0;
    }
    // x_(j) and x_(j+1), 1-based, clamped to the sample.
    let at = |k: f64| sorted[(k.max(1.0) as usize).min(n) - 1];
    let (lo, hi) = (at(j), at(j + 1.0));
    if g == 0.0 {
        lo
    } else {
        (1.0 - g) * lo + g * hi
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn close(a: f64, b: f64, tol: f64) -> bool {
        (a - b).abs() <= tol * b.abs().max(1e-300)
    }

    #[test]
    fn distribution_functions_match_known_values() {
        assert!(close(ln_gamma(10.0), 362_880f64.ln(), 1e-13));
        assert!(close(
            ln_gamma(0.5),
            std::f64::consts::PI.sqrt().ln(),
            1e-13
        ));
        let le = |n: i32| -> f64 {
            (0..=n)
                .map(|k| (-2.5f64).exp() * 2.5f64.powi(k) / (1..=k).map(f64::from).product::<f64>())
                .sum()
        };
        assert!(close(poisson_le(3.0, 2.5), le(3), 1e-12));
        assert!(close(poisson_ge(10.0, 2.5), 1.0 - le(9), 1e-9));
        assert!(close(poisson_ge(1.0, 2.5), 1.0 - (-2.5f64).exp(), 1e-12));
        assert!(close(
            poisson_le(1500.0, 1400.0),
            1.0 - poisson_ge(1501.0, 1400.0),
            1e-12
        ));
        assert!(close(normal_cdf(1.959_963_984_540_054), 0.975, 1e-14));
        assert!(close(normal_quantile(0.975), 1.959_963_984_540_054, 1e-14));
        assert!(close(normal_quantile(0.001), -3.090_232_306_167_813, 1e-13));
        assert!(close(normal_quantile(0.5) + 1.0, 1.0, 1e-15));
    }

    #[test]
    fn type8_quantiles_are_rs() {
        // R: quantile(1:10, c(0.1, 0.5, 0.975), type = 8) = 1.366667 5.5 10
        let x: Vec<f64> = (1..=10).map(f64::from).collect();
        assert!(close(quantile_type8(&x, 0.1), 1.366_666_666_666_667, 1e-12));
        assert!(close(quantile_type8(&x, 0.5), 5.5, 1e-15));
        assert_eq!(quantile_type8(&x, 0.975), 10.0);
        assert_eq!(quantile_type8(&x, 0.0), 1.0);
    }
}
