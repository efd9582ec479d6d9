package dev.strata.parallel.comm;

import dev.strata.runtime.DType;
import dev.strata.runtime.Tensor;
import dev.strata.runtime.cpu.CpuBackend;
import java.time.Duration;

/**
 * One rank in its own JVM for {@link PekkoCommunicatorTest}: joins the group, then runs the contract ("contract") or
 * dies after one collective if it is the last rank ("die"). Prints PASS, or the error on one line; exit code 0 or 3.
 */
public final class ContractWorker {
    public static void main(String[] args) {
        int rank = Integer.parseInt(args[0]), size = Integer.parseInt(args[1]), port = Integer.parseInt(args[2]);
        String mode = args[3];
        Duration timeout = Duration.ofMillis(Long.parseLong(args[4]));
        int code = 0;
        try (Communicator c = PekkoCommunicator.join("dp", rank, size, "127.0.0.1", port, timeout)) {
            if (mode.equals("contract")) {
                for (String name : CommunicatorContract.CASES) CommunicatorContract.run(name, c, CpuBackend.INSTANCE, DType.F64);
                // a tensor larger than a frame, in pieces
                double[] big = new double[100_000];
                for (int i = 0; i < big.length; i++) big[i] = i * (rank + 1);
                try (Tensor t = CpuBackend.INSTANCE.fromDoubles(big, DType.F64, big.length)) {
                    c.allReduce(t, ReduceOp.SUM).await();
                    double[] out = CpuBackend.INSTANCE.toDoubles(t);
                    for (int i = 0; i < out.length; i++)
                        if (out[i] != i * size * (size + 1) / 2.0) throw new AssertionError("big all-reduce [" + i + "] = " + out[i]);
                }
            } else {
                try (Tensor t = CpuBackend.INSTANCE.fromDoubles(new double[] {1, 2}, DType.F64, 2)) {
                    c.allReduce(t, ReduceOp.SUM).await();
                    if (rank == size - 1) Runtime.getRuntime().halt(9); // killed mid-run
                    c.allReduce(t, ReduceOp.SUM).await();
                }
            }
            System.out.println("PASS");
        } catch (Throwable e) {
            System.out.println("FAIL " + e.getClass().getSimpleName() + ": " + e.getMessage());
            code = 3;
        }
        System.out.flush();
        Runtime.getRuntime().halt(code);
    }
}
