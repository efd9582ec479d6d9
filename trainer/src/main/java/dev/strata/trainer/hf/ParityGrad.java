package dev.strata.trainer.hf;

import dev.strata.runtime.nn.Parameter;
import dev.strata.runtime.Backend;
import dev.strata.runtime.DType;
import dev.strata.runtime.HostTensor;
import dev.strata.runtime.Tensor;
import dev.strata.trainer.model.Transformer;
import java.io.IOException;
import java.nio.file.Path;
import java.util.LinkedHashMap;
import java.util.Map;

/**
 * What {@code strata model grad} computes, with transformers' semantics for labels = input_ids: logits (B,T,V),
 * the mean next-token loss over B x (T-1) positions, and every parameter's gradient under its checkpoint name and in
 * its checkpoint layout.
 */
public final class ParityGrad {
    private ParityGrad() {}

    public static Map<String, HostTensor> compute(Path modelDir, HostTensor inputIds, Backend backend, DType dtype) throws IOException {
        if (inputIds.shape().length != 2)
            throw new IllegalArgumentException("input_ids must be [batch, seq], got shape " + java.util.Arrays.toString(inputIds.shape()));
        HfModels.Loaded loaded = HfModels.load(modelDir, backend, dtype);
        Transformer model = loaded.model();
        int b = inputIds.shape()[0], t = inputIds.shape()[1], v = model.config().vocabSize();
        int[] ids = inputIds.toInts(), targets = new int[ids.length];
        for (int i = 0; i < ids.length; i++)
            if (ids[i] < 0 || ids[i] >= v)
                throw new IllegalArgumentException("input_ids[" + i / t + ", " + i % t + "] = " + ids[i] + " is outside the model's vocabulary [0, " + v + ")");
        for (int i = 0; i < ids.length; i++) targets[i] = (i % t == t - 1) ? -1 : ids[i + 1];
        DType stored = dtype == DType.F64 ? DType.F64 : DType.F32;
        Map<String, HostTensor> out = new LinkedHashMap<>();
        model.zeroGrad();
        try (Tensor idsT = backend.fromInts(ids, b, t); Tensor targetsT = backend.fromInts(targets, b, t);
             Tensor logits = model.forward(idsT, b, t)) {
            out.put("logits", HostTensor.ofDoubles(realColumns(backend.toDoubles(logits), b * t, v), stored, b, t, v));
            long count = (long) b * (t - 1);
            double lossSum = 0;
            try (Tensor losses = backend.crossEntropy(logits, v, targetsT, logits, 1.0 / count)) {
                for (double l : backend.toDoubles(losses)) lossSum += l;
            }
            model.backward(logits);
            out.put("loss", HostTensor.ofDoubles(new double[] {lossSum / count}, stored));
        }
        HfModels.toHf(model, loaded.mappings(), p -> model.backend().toDoubles(p.grad()), stored).forEach((name, g) -> out.put("grad." + name, g));
        return out;
    }

    /** The first v columns of each of the n rows of the padded logits (n,Vp). */
    static double[] realColumns(double[] logits, int n, int v) {
        int vp = logits.length / n;
        double[] out = new double[n * v];
        for (int r = 0; r < n; r++) System.arraycopy(logits, r * vp, out, r * v, v);
        return out;
    }
}
