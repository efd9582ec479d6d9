package dev.strata.trainer.hf;

import dev.strata.runtime.Backend;
import dev.strata.runtime.DType;
import dev.strata.runtime.HostTensor;
import dev.strata.runtime.nn.AdamW;
import dev.strata.trainer.model.Transformer;
import dev.strata.trainer.train.LrSchedule;
import dev.strata.trainer.train.TrainStep;
import java.io.IOException;
import java.nio.file.Path;
import java.util.Arrays;

/**
 * What {@code strata model steps} computes, the training side of the parity tools: starting from a Hugging Face
 * model's weights, one AdamW step per given batch (warm-up + cosine schedule, global-norm clipping), and the mean
 * next-token loss of each step before its update. The batches fix the data order, so another framework can run
 * the same steps and compare losses.
 */
public final class ParitySteps {
    private ParitySteps() {}

    public record Settings(double lr, double minLr, int warmupSteps, double weightDecay, double gradClip) {}

    /** batches: input_ids (steps, B, T+1), each row's first T tokens the inputs and last T the targets. */
    public static double[] run(Path modelDir, HostTensor batches, Backend backend, DType dtype, Settings s) throws IOException {
        int[] shape = batches.shape();
        if (shape.length != 3 || shape[2] < 2)
            throw new IllegalArgumentException("input_ids must be [steps, batch, seq + 1], got shape " + Arrays.toString(shape));
        int steps = shape[0], b = shape[1], t = shape[2] - 1;
        Transformer model = HfModels.load(modelDir, backend, dtype).model();
        AdamW opt = new AdamW(model.parameters(), new AdamW.Settings(0.9, 0.95, 1e-8, s.weightDecay(), false));
        LrSchedule schedule = new LrSchedule(s.lr(), s.minLr(), s.warmupSteps(), steps);
        int[] all = batches.toInts();
        int[][] inputs = new int[1][b * t], targets = new int[1][b * t];
        double[] losses = new double[steps];
        try (TrainStep trainStep = new TrainStep(model, opt, b, t, 1, s.gradClip(), true)) {
            for (int step = 0; step < steps; step++) {
                for (int row = 0; row < b; row++) {
                    int from = (step * b + row) * (t + 1);
                    System.arraycopy(all, from, inputs[0], row * t, t);
                    System.arraycopy(all, from + 1, targets[0], row * t, t);
                }
                losses[step] = trainStep.run(inputs, targets, schedule.at(step)).loss();
            }
        }
        return losses;
    }
}
