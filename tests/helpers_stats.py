"""Chi-square quantiles without scipy, so that statistical tests mean the same on every machine."""
import math

_EPS = 1e-15
_TINY = 1e-300


def regularized_lower_gamma(a, x):
    """P(a, x) = gamma(a, x) / Gamma(a): the series for x < a + 1, else 1 - Q(a, x) with Q
    from its continued fraction (modified Lentz), as in Numerical Recipes' gammp."""
    if a <= 0:
        raise ValueError(f"a must be positive, got {a}")
    if x <= 0:
        return 0.0
    log_prefactor = a * math.log(x) - x - math.lgamma(a)
    if x < a + 1:
        term = total = 1.0 / a
        n = 0
        while abs(term) > abs(total) * _EPS:
            n += 1
            term *= x / (a + n)
            total += term
        return min(1.0, total * math.exp(log_prefactor))
    b = x + 1.0 - a
    c = 1.0 / _TINY
    d = 1.0 / b
    h = d
    for i in range(1, 10_000):
        an = -i * (i - a)
        b += 2.0
        d = an * d + b
        d = _TINY if abs(d) < _TINY else d
        c = b + an / c
        c = _TINY if abs(c) < _TINY else c
        d = 1.0 / d
        delta = d * c
        h *= delta
        if abs(delta - 1.0) < _EPS:
            break
    return max(0.0, 1.0 - math.exp(log_prefactor) * h)


def chi2_cdf(x, df):
    return regularized_lower_gamma(df / 2.0, x / 2.0)


def chi2_quantile(q, df):
    """The x with chi2_cdf(x, df) = q (0 < q < 1), by bisection (the cdf is increasing)."""
    if not 0 < q < 1 or df <= 0:
        raise ValueError(f"need 0 < q < 1 and df > 0, got q={q}, df={df}")
    lo, hi = 0.0, df + 10.0 * math.sqrt(2.0 * df) + 10.0
    while chi2_cdf(hi, df) < q:
        lo, hi = hi, 2.0 * hi
    for _ in range(200):
        mid = 0.5 * (lo + hi)
        if mid in (lo, hi):
            break
        if chi2_cdf(mid, df) < q:
            lo = mid
        else:
            hi = mid
    return 0.5 * (lo + hi)
