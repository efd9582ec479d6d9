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
 * layers; every rank has one, of one rank at dp = 1), its tensor-parallel group (null at tp = 1) and its pipeline
 * group (the stages of its slice, in stage order; null at pp = 1). Closing closes them.
 */
public record MeshComms(DeviceMesh mesh, int rank, Communicator dp, Communicator tp, Communicator pp) implements AutoCloseable {

    /** The tp and pp groups of more than one rank, then the dp groups, in a fixed order: one rendezvous port each. */
    public static List<DeviceMesh.Group> groups(DeviceMesh mesh) {
        List<DeviceMesh.Group> all = new ArrayList<>();
        for (MeshDim d : new MeshDim[] {MeshDim.TP, MeshDim.PP}) for (DeviceMesh.Group g : mesh.groups(d)) if (g.size() > 1) all.add(g);
        all.addAll(mesh.groups(MeshDim.DP));
        return all;
    }

    private static int slot(DeviceMesh.Group g) { return g.dims().contains(MeshDim.TP) ? 1 : g.dims().contains(MeshDim.PP) ? 2 : 0; }

    /** Every rank's communicators, ranks as threads of this JVM. */
    public static List<MeshComms> inProcess(DeviceMesh mesh, Duration timeout) {
        Communicator[][] of = new Communicator[mesh.size()][3];
        for (DeviceMesh.Group g : groups(mesh)) {
            List<Communicator> comms = InProcessCommunicator.group(g.name(), g.size(), timeout);
            for (int i = 0; i < g.size(); i++) of[g.ranks()[i]][slot(g)] = comms.get(i);
        }
        List<MeshComms> ranks = new ArrayList<>();
        for (int r = 0; r < mesh.size(); r++) ranks.add(new MeshComms(mesh, r, of[r][0], of[r][1], of[r][2]));
        return ranks;
    }

    /**
     * This process's communicators, ranks as processes on their hosts (hosts[r]: rank r's address): each group's
     * first rank listens on its host at {@code ports[i]}, i the group's index in {@link #groups}; wrap turns each
     * joined group into the communicator kept (NCCL over it, on GPUs).
     */
    public static MeshComms join(DeviceMesh mesh, int rank, List<String> hosts, List<Integer> ports, Duration timeout,
                                 BiFunction<Communicator, DeviceMesh.Group, Communicator> wrap) {
        if (hosts.size() != mesh.size()) throw new IllegalArgumentException(mesh + " has " + mesh.size() + " ranks, but " + hosts.size() + " hosts are given: " + hosts);
        List<DeviceMesh.Group> groups = groups(mesh);
        if (ports.size() != groups.size())
            throw new IllegalArgumentException(groups.size() + " groups of " + mesh + " need as many rendezvous ports, got " + ports);
        Communicator[] of = new Communicator[3];
        try {
            for (int i = 0; i < groups.size(); i++) {
                DeviceMesh.Group g = groups.get(i);
                if (contains(g, rank)) of[slot(g)] = wrap.apply(PekkoCommunicator.join(g.name(), g.indexOf(rank), g.size(), hosts.get(g.ranks()[0]), ports.get(i), timeout), g);
            }
            return new MeshComms(mesh, rank, of[0], of[1], of[2]);
        } catch (RuntimeException e) {
            for (Communicator c : of) if (c != null) c.close();
            throw e;
        }
    }

    private static boolean contains(DeviceMesh.Group g, int rank) {
        for (int r : g.ranks()) if (r == rank) return true;
        return false;
    }

    public DeviceMesh.Coordinates coordinates() { return mesh.coordinates(rank); }

    @Override public void close() {
        for (Communicator c : new Communicator[] {dp, tp, pp}) if (c != null) c.close();
    }
}
