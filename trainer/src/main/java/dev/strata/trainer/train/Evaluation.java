package dev.strata.trainer.train;

import dev.strata.runtime.Backend;
import dev.strata.runtime.DType;
import dev.strata.runtime.Tensor;
import dev.strata.trainer.data.Windows;
import dev.strata.trainer.model.Transformer;

/** The validation loss: the mean over every target that counts of the first batches of a split, read in order. */
public final class Evaluation {
    private Evaluation() {}

    /** Mean validation loss over the first eval.batches batches of the validation split, in order. */
    public static double loss(Transformer model, Windows val, int b, int t, int batches) {
        Backend backend = model.backend();
        return loss(val, b, t, batches, backend, model.precision().params(), (x, y, bb, tt, lossSum) -> {
            try (Tensor sum = backend.fromDoubles(new double[] {model.loss(x, y, bb, tt).sum()}, lossSum.dtype(), 1)) {
                backend.addInPlace(lossSum, sum);
            }
        });
    }

    /** Adds a batch's summed loss into lossSum (1): the whole model's, or a pipeline's through its stages. */
    @FunctionalInterface
    interface BatchLoss {
        void add(Tensor ids, Tensor targets, int b, int t, Tensor lossSum);
    }

    static double loss(Windows val, int b, int t, int batches, Backend backend, DType lossType, BatchLoss batchLoss) {
        double sum = 0;
        long count = 0;
        int[] inputs = new int[b * t], targets = new int[b * t];
        for (long w = 0; w + b <= val.windows() && w < (long) batches * b; w += b) {
            for (int row = 0; row < b; row++) val.window(w + row, inputs, targets, row);
            try (Tensor x = backend.fromInts(inputs, b, t); Tensor y = backend.fromInts(targets, b, t); Tensor loss = backend.zeros(lossType, 1)) {
                batchLoss.add(x, y, b, t, loss);
                sum += backend.toDoubles(loss)[0];
                for (int target : targets) if (target >= 0) count++;
            }
        }
        if (count == 0) throw new IllegalArgumentException("the validation data has fewer than " + b + " windows of " + (t + 1) + " tokens");
        return sum / count;
    }
}
