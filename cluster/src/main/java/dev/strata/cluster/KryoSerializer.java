package dev.strata.cluster;

import com.esotericsoftware.kryo.Kryo;
import com.esotericsoftware.kryo.io.Input;
import com.esotericsoftware.kryo.io.Output;
import org.apache.pekko.actor.ExtendedActorSystem;
import org.apache.pekko.actor.typed.ActorRefResolver;
import org.apache.pekko.actor.typed.javadsl.Adapter;
import org.apache.pekko.serialization.JSerializer;

/** Pekko's serializer for {@link ClusterMessage}s: Kryo, with every type registered ({@link Messages}); one Kryo per thread, as Kryo is not thread-safe. */
public final class KryoSerializer extends JSerializer {
    private final ThreadLocal<Kryo> kryo;

    public KryoSerializer(ExtendedActorSystem system) {
        ActorRefResolver refs = ActorRefResolver.get(Adapter.toTyped(system));
        this.kryo = ThreadLocal.withInitial(() -> {
            Kryo k = new Kryo();
            Messages.register(k, refs);
            return k;
        });
    }

    @Override public int identifier() { return 0x53545241; } // "STRA"

    @Override public boolean includeManifest() { return false; }

    @Override public byte[] toBinary(Object o) {
        try (Output out = new Output(256, -1)) {
            kryo.get().writeClassAndObject(out, o);
            return out.toBytes();
        }
    }

    @Override public Object fromBinaryJava(byte[] bytes, Class<?> manifest) {
        try (Input in = new Input(bytes)) {
            return kryo.get().readClassAndObject(in);
        }
    }
}
