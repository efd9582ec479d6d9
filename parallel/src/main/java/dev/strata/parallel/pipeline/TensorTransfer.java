package dev.strata.parallel.pipeline;

import dev.strata.parallel.comm.Communicator;
import dev.strata.runtime.Backend;
import dev.strata.runtime.DType;
import dev.strata.runtime.HostTensor;
import dev.strata.runtime.Tensor;
import java.util.ArrayList;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;

/**
 * Named host tensors from one rank to another over a communicator: how a checkpoint's writer collects what the other
 * pipeline stages hold. A header (its length first) names each tensor with its dtype and shape, then the tensors
 * follow in order.
 */
public final class TensorTransfer {
    private TensorTransfer() {}

    public static void send(Communicator c, int to, Backend backend, Map<String, HostTensor> tensors) {
        List<Double> header = new ArrayList<>();
        header.add((double) tensors.size());
        tensors.forEach((name, t) -> {
            header.add((double) t.dtype().ordinal());
            header.add((double) t.shape().length);
            for (int d : t.shape()) header.add((double) d);
            header.add((double) name.length());
            for (char ch : name.toCharArray()) header.add((double) ch);
        });
        double[] h = header.stream().mapToDouble(Double::doubleValue).toArray();
        move(c, to, backend.fromDoubles(new double[] {h.length}, DType.F64, 1), true);
        move(c, to, backend.fromDoubles(h, DType.F64, h.length), true);
        for (HostTensor t : tensors.values()) move(c, to, t.to(backend, t.dtype()), true);
    }

    public static Map<String, HostTensor> receive(Communicator c, int from, Backend backend) {
        Tensor length = backend.zeros(DType.F64, 1);
        move(c, from, length, false);
        Tensor header = backend.zeros(DType.F64, (int) backend.toDoubles(length)[0]);
        length.close();
        move(c, from, header, false);
        double[] h = backend.toDoubles(header);
        header.close();
        Map<String, HostTensor> out = new LinkedHashMap<>();
        int at = 1;
        for (int i = 0; i < (int) h[0]; i++) {
            DType dtype = DType.values()[(int) h[at++]];
            int[] shape = new int[(int) h[at++]];
            for (int d = 0; d < shape.length; d++) shape[d] = (int) h[at++];
            StringBuilder name = new StringBuilder();
            for (int n = (int) h[at++]; n > 0; n--) name.append((char) h[at++]);
            Tensor t = backend.zeros(dtype, shape);
            move(c, from, t, false);
            out.put(name.toString(), HostTensor.of(t, dtype));
            t.close();
        }
        return out;
    }

    private static void move(Communicator c, int peer, Tensor t, boolean sending) {
        (sending ? c.send(t, peer) : c.recv(t, peer)).await();
        if (sending) t.close();
    }
}
