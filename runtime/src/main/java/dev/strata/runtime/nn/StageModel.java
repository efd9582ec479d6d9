package dev.strata.runtime.nn;

import dev.strata.runtime.Tensor;

/**
 * A pipeline stage's part of the model, as a schedule drives it one micro-batch at a time; what a micro-batch's
 * forward keeps for its backward goes to the {@link Activations} bound at the time.
 */
public interface StageModel {
    /**
     * input: token ids (B,T) on the first stage, else the hidden state the stage before sent. The last stage adds the
     * summed loss of targets (B,T) into lossSum and returns the gradient of gradScale × that loss with respect to its
     * logits, for its backward; the others return the hidden state to send on. With training false nothing is kept,
     * and the last stage returns null.
     */
    Tensor forwardStage(Tensor input, Tensor targets, int b, int t, double gradScale, Tensor lossSum, boolean training);

    /** dout: what forwardStage returned on the last stage, else the gradient the next stage sent; returns dx to send back (null on the first stage). */
    Tensor backward(Tensor dout);
}
