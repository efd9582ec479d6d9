package dev.strata.cluster;

import com.esotericsoftware.kryo.Kryo;
import com.esotericsoftware.kryo.Serializer;
import com.esotericsoftware.kryo.io.Input;
import com.esotericsoftware.kryo.io.Output;
import java.util.List;
import org.apache.pekko.actor.typed.ActorRef;
import org.apache.pekko.actor.typed.ActorRefResolver;

/**
 * The cluster's message types and what they carry, registered with Kryo under fixed ids, so both ends agree
 * without writing class names; Kryo refuses anything unregistered, which a test of every type catches first.
 */
final class Messages {
    private Messages() {}

    /** Every message type, in id order: append, never reorder (ids are on the wire). */
    static final List<Class<?>> TYPES = List.of(
            Protocol.NodeInfo.class, Protocol.WorkerUp.class, Protocol.Submit.class, Protocol.Submitted.class, Protocol.ListJobs.class,
            Protocol.JobList.class, Protocol.JobView.class, Protocol.GetJob.class, Protocol.Cancel.class, Protocol.ListNodes.class,
            Protocol.NodeList.class, Protocol.RankExited.class, Protocol.Progress.class, Protocol.StartRanks.class, Protocol.StopRanks.class,
            Protocol.ReadLog.class, Protocol.LogChunk.class, Protocol.GetLog.class, Protocol.Rejected.class, Protocol.GetCurve.class, Protocol.Curve.class,
            Protocol.AttemptState.class, Protocol.ResendProgress.class);

    static void register(Kryo kryo, ActorRefResolver refs) {
        kryo.setRegistrationRequired(true);
        int id = 100;
        for (Class<?> c : List.of(int[].class, long[].class, double[].class, String[].class, Protocol.NodeInfo[].class, Protocol.JobView[].class, Protocol.AttemptState[].class))
            kryo.register(c, id++);
        Serializer<ActorRef<?>> ref = new Serializer<>() {
            @Override public void write(Kryo k, Output out, ActorRef<?> r) { out.writeString(refs.toSerializationFormat(r)); }

            @Override public ActorRef<?> read(Kryo k, Input in, Class<? extends ActorRef<?>> type) { return refs.resolveActorRef(in.readString()); }
        };
        for (String impl : List.of("org.apache.pekko.actor.typed.internal.adapter.ActorRefAdapter")) {
            try {
                kryo.register(Class.forName(impl), ref, 150);
            } catch (ClassNotFoundException e) {
                throw new IllegalStateException("Pekko's typed ActorRef class " + impl + " is gone: update Messages for this Pekko", e);
            }
        }
        id = 200;
        for (Class<?> c : TYPES) kryo.register(c, id++);
    }
}
