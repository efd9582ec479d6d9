package dev.strata.runtime.nn;

import dev.strata.runtime.Tensor;

/**
 * A pipeline stage's part of the model, as a schedule drives it one micro-batch at a time; what a micro-batch's
 * forward keeps for its backward goes to the {@link Activations} bound at the time. A stage holds one chunk of
 * layers, or several under an interleaved schedule (its chunk c being the model's chunk c·pp + stage).
 */
public interface StageModel {
    /** How many chunks of layers the stage holds. */
    default int chunks() { return 1; }

    /**
     * input: token ids (B,T) into the model's first chunk, else the hidden state the chunk before sent. The model's
     * last chunk adds the summed loss of targets (B,T) into lossSum and returns the gradient of gradScale × that loss
     * with respect to its logits, for its backward; the others return the hidden state to send on. With training
     * false nothing is kept, and the last chunk returns null.
     */
    Tensor forwardStage(int chunk, Tensor input, Tensor targets, int b, int t, double gradScale, Tensor lossSum, boolean training);

    /** dout: what forwardStage returned on the last chunk, else the gradient the next chunk sent; returns dx to send back (null from the first chunk). */
    Tensor backward(int chunk, Tensor dout);
}
