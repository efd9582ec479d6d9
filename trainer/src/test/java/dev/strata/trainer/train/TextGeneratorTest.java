package dev.strata.trainer.train;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;

import java.util.SplittableRandom;
import org.junit.jupiter.api.Test;

class TextGeneratorTest {
    /** As transformers' repetition_penalty: each token of the context once, positive logits divided, negative multiplied. */
    @Test
    void repetitionPenaltyLowersTokensOfTheContext() {
        double[] logits = {2, -1, 0.5, 3};
        TextGenerator.penalize(logits, new int[] {0, 1, 1, 9, 0}, 0, 4, 2.0);
        assertArrayEquals(new double[] {1, -2, 0.5, 3}, logits, 0.0);
        double[] unchanged = {2, -1};
        TextGenerator.penalize(unchanged, new int[] {0, 1}, 0, 2, 1.0);
        assertArrayEquals(new double[] {2, -1}, unchanged, 0.0);
        assertThrows(IllegalArgumentException.class, () -> new TextGenerator.Sampling(1, 0, 1, 0.5, 1));
    }

    @Test
    void greedyTakesTheLargestAndTopKKeepsOnlyTheKLargest() {
        double[] logits = {0.1, 5, 0.2, 4.9};
        assertEquals(1, TextGenerator.sample(logits, new TextGenerator.Sampling(0, 0, 1, 1), new SplittableRandom(1)));
        SplittableRandom rng = new SplittableRandom(2);
        for (int i = 0; i < 200; i++) {
            int id = TextGenerator.sample(logits, new TextGenerator.Sampling(1, 2, 1, 1), rng);
            assertEquals(true, id == 1 || id == 3, "top-2 only: " + id);
        }
    }
}
