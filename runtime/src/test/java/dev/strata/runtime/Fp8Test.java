package dev.strata.runtime;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.EnumSource;

/** The FP8 codecs: every code round-trips, known values, ties to even at every rounding boundary, saturation. */
class Fp8Test {

    @ParameterizedTest
    @EnumSource(Fp8.class)
    void everyCodeRoundTrips(Fp8 f) {
        for (int code = 0; code < 256; code++) {
            float v = f.decode(code);
            if (Float.isNaN(v)) assertTrue(Float.isNaN(f.decode(f.encode(v))), f + " NaN code " + code);
            else if (Float.isInfinite(v)) assertEquals(Math.copySign(f.max(), v), f.decode(f.encode(v)), f + ": infinity saturates");
            else assertEquals(code, f.encode(v) & 0xff, f + " code " + code + " (" + v + ")");
        }
    }

    @ParameterizedTest
    @EnumSource(Fp8.class)
    void tiesRoundToEvenAndOverflowSaturates(Fp8 f) {
        for (int code = 0; code < 0x7f; code++) {
            float lo = f.decode(code), hi = f.decode(code + 1);
            if (!Float.isFinite(hi)) continue;
            double mid = (lo + (double) hi) / 2;
            int even = (code & 1) == 0 ? code : code + 1;
            assertEquals(even, f.encode(mid) & 0xff, f + ": the midpoint of codes " + code + " and " + (code + 1) + " goes to the even one");
            assertEquals(code, f.encode(Math.nextDown(mid)) & 0xff, f + ": just below the midpoint after " + code);
            assertEquals(code + 1, f.encode(Math.nextUp(mid)) & 0xff, f + ": just above the midpoint after " + code);
            assertEquals(code | 0x80, f.encode(-Math.nextDown(mid)) & 0xff, f + ": negative values mirror positive ones");
        }
        assertEquals(f.max(), f.decode(f.encode(f.max() * 1.06)), f + ": beyond max saturates");
        assertEquals(-f.max(), f.decode(f.encode(-1e30)), f + ": far beyond -max saturates");
        assertEquals(0x80, f.encode(-0.0) & 0xff, f + ": negative zero keeps its sign");
    }

    @org.junit.jupiter.api.Test
    void knownValues() {
        assertEquals(448.0, Fp8.E4M3.decode(0x7e));
        assertEquals(Math.scalb(1.0, -9), Fp8.E4M3.decode(0x01), "smallest e4m3 subnormal");
        assertEquals(Math.scalb(1.0, -6), Fp8.E4M3.decode(0x08), "smallest e4m3 normal");
        assertEquals(57344.0, Fp8.E5M2.decode(0x7b));
        assertEquals(Math.scalb(1.0, -16), Fp8.E5M2.decode(0x01), "smallest e5m2 subnormal");
        assertEquals(1.0, Fp8.E4M3.decode(0x38));
        assertEquals(1.0, Fp8.E5M2.decode(0x3c));
    }
}
