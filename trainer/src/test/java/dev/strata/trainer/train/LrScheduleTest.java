package dev.strata.trainer.train;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;

import org.junit.jupiter.api.Test;

class LrScheduleTest {
    @Test
    void warmsUpLinearlyThenDecaysByCosineToTheMinimum() {
        LrSchedule s = new LrSchedule(1e-3, 1e-4, 10, 110);
        assertEquals(1e-4, s.at(0), 1e-15);
        assertEquals(1e-3, s.at(9), 1e-15);
        assertEquals(1e-3, s.at(10), 1e-15);
        assertEquals(1e-4 + 0.5 * 9e-4, s.at(60), 1e-15);
        assertEquals(1e-4, s.at(110), 1e-15);
        assertThrows(IllegalArgumentException.class, () -> new LrSchedule(1e-3, 1e-2, 0, 10));
    }
}
