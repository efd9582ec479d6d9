package dev.strata.parallel;

import dev.strata.parallel.comm.Communicator;
import dev.strata.parallel.comm.InProcessCommunicator;
import dev.strata.parallel.comm.PekkoCommunicator;
import dev.strata.runtime.nn.MeshDim;
import java.time.Duration;
import java.util.ArrayList;
import java.util.List;
import java.util.function.BiFunction;

/**
 * The communicators one rank of a mesh holds: its data-parallel group (the ranks with the same slices of the same
 * layers; every rank has one, of one rank at dp = 1) and its tensor-parallel group (null at tp = 1). Closing closes
 * both.
 */
public record MeshComms(DeviceMesh mesh, int rank, Communicator dp, Communicator tp) implements AutoCloseable {

    /** The tp groups of more than one rank, then the dp groups, in a fixed order: one rendezvous port each. */
    public static List<DeviceMesh.Group> groups(DeviceMesh mesh) {
        List<DeviceMesh.Group> all = new ArrayList<>();
        for (DeviceMesh.Group g : mesh.groups(MeshDim.TP)) if (g.size() > 1) all.add(g);
        all.addAll(mesh.groups(MeshDim.DP));
        return all;
    }

    /** Every rank's communicators, ranks as threads of this JVM. */
    public static List<MeshComms> inProcess(DeviceMesh mesh, Duration timeout) {
        Communicator[][] of = new Communicator[mesh.size()][2];
        for (DeviceMesh.Group g : groups(mesh)) {
            List<Communicator> comms = InProcessCommunicator.group(g.name(), g.size(), timeout);
            for (int i = 0; i < g.size(); i++) of[g.ranks()[i]][g.dims().contains(MeshDim.TP) ? 1 : 0] = comms.get(i);
        }
        List<MeshComms> ranks = new ArrayList<>();
        for (int r = 0; r < mesh.size(); r++) ranks.add(new MeshComms(mesh, r, of[r][0], of[r][1]));
        return ranks;
    }

    /**
     * This process's communicators, ranks as processes on one host: each group's first rank listens at the port
     * {@code portOf} gives the group's index in {@link #groups}; wrap turns each joined group into the communicator
     * kept (NCCL over it, on GPUs).
     */
    public static MeshComms join(DeviceMesh mesh, int rank, String host, List<Integer> ports, Duration timeout,
                                 BiFunction<Communicator, DeviceMesh.Group, Communicator> wrap) {
        List<DeviceMesh.Group> groups = groups(mesh);
        if (ports.size() != groups.size())
            throw new IllegalArgumentException(groups.size() + " groups of " + mesh + " need as many rendezvous ports, got " + ports);
        Communicator dp = null, tp = null;
        try {
            for (int i = 0; i < groups.size(); i++) {
                DeviceMesh.Group g = groups.get(i);
                if (!contains(g, rank)) continue;
                Communicator c = wrap.apply(PekkoCommunicator.join(g.name(), g.indexOf(rank), g.size(), host, ports.get(i), timeout), g);
                if (g.dims().contains(MeshDim.TP)) tp = c;
                else dp = c;
            }
            return new MeshComms(mesh, rank, dp, tp);
        } catch (RuntimeException e) {
            if (dp != null) dp.close();
            if (tp != null) tp.close();
            throw e;
        }
    }

    private static boolean contains(DeviceMesh.Group g, int rank) {
        for (int r : g.ranks()) if (r == rank) return true;
        return false;
    }

    public DeviceMesh.Coordinates coordinates() { return mesh.coordinates(rank); }

    @Override public void close() {
        if (dp != null) dp.close();
        if (tp != null) tp.close();
    }
}
