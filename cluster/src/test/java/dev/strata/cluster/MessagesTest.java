package dev.strata.cluster;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import dev.strata.cluster.Protocol.*;
import java.lang.reflect.RecordComponent;
import java.time.Duration;
import java.util.Map;
import org.apache.pekko.actor.typed.ActorRef;
import org.apache.pekko.actor.typed.ActorSystem;
import org.apache.pekko.actor.typed.javadsl.Adapter;
import org.apache.pekko.actor.typed.javadsl.Behaviors;
import org.apache.pekko.serialization.SerializationExtension;
import org.junit.jupiter.api.AfterAll;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.Test;

/**
 * Every message type crosses the wire through Pekko's serialization with Kryo, as a cluster node sends it: built
 * from sample values for each of its components, it comes back equal (arrays element by element, actor
 * references resolved); every {@link ClusterMessage} in the protocol is registered; one that is not fails here.
 */
class MessagesTest {
    static ActorSystem<Void> system;

    @BeforeAll
    static void start() { system = ActorSystem.create(Behaviors.empty(), "messages", com.typesafe.config.ConfigFactory.parseString("pekko.coordinated-shutdown.exit-jvm = off") // the JVM is the test run's
                .withFallback(ClusterNode.config("127.0.0.1", 0, java.util.List.of(), "test", Duration.ofSeconds(3), null))); }

    @AfterAll
    static void stop() { system.terminate(); }

    @Test
    void everyMessageTypeRoundTripsThroughKryo() throws Exception {
        ActorRef<Object> ref = system.systemActorOf(Behaviors.ignore(), "probe", org.apache.pekko.actor.typed.Props.empty());
        var serialization = SerializationExtension.get(Adapter.toClassic(system));
        for (Class<?> type : Messages.TYPES) {
            Object sample = sample(type, ref);
            var serializer = serialization.findSerializerFor(sample);
            assertTrue(serializer instanceof KryoSerializer, type + " is bound to " + serializer);
            Object back = serializer.fromBinary(serializer.toBinary(sample), type);
            assertEquals(describe(sample), describe(back), type.getSimpleName());
        }
    }

    @Test
    void everyProtocolMessageIsRegistered() {
        for (Class<?> c : Protocol.class.getDeclaredClasses())
            if (ClusterMessage.class.isAssignableFrom(c) && c.isRecord()) assertTrue(Messages.TYPES.contains(c), c.getSimpleName() + " is not in Messages.TYPES");
    }

    record Unregistered(int x) implements ClusterMessage {}

    @Test
    void anUnregisteredMessageFails() {
        var serializer = SerializationExtension.get(Adapter.toClassic(system)).findSerializerFor(new Unregistered(1));
        assertThrows(RuntimeException.class, () -> serializer.toBinary(new Unregistered(1)));
    }

    /** A value of type with every component set to something other than its default. */
    static Object sample(Class<?> type, ActorRef<?> ref) throws Exception {
        RecordComponent[] parts = type.getRecordComponents();
        Object[] values = new Object[parts.length];
        Class<?>[] types = new Class<?>[parts.length];
        for (int i = 0; i < parts.length; i++) {
            types[i] = parts[i].getType();
            values[i] = value(types[i], i, ref);
        }
        return type.getDeclaredConstructor(types).newInstance(values);
    }

    private static Object value(Class<?> t, int i, ActorRef<?> ref) throws Exception {
        if (t == String.class) return "s" + i;
        if (t == int.class) return 7 + i;
        if (t == long.class) return 1L << 40 | i;
        if (t == double.class) return 0.5 + i;
        if (t == boolean.class) return true;
        if (t == int[].class) return new int[] {i, 2, 3};
        if (t == long[].class) return new long[] {i, 1L << 40};
        if (t == double[].class) return new double[] {i + 0.25, -1.5};
        if (t == String[].class) return new String[] {"a", "b" + i};
        if (t == ActorRef.class) return ref;
        if (t == NodeInfo.class) return sample(NodeInfo.class, ref);
        if (t == NodeInfo[].class) return new NodeInfo[] {(NodeInfo) sample(NodeInfo.class, ref)};
        if (t == JobView.class) return sample(JobView.class, ref);
        if (t == JobView[].class) return new JobView[] {(JobView) sample(JobView.class, ref)};
        if (t == AttemptState[].class) return new AttemptState[] {(AttemptState) sample(AttemptState.class, ref)};
        throw new IllegalArgumentException("no sample for " + t);
    }

    /** The record's components, arrays spelled out, so equal contents compare equal. */
    static String describe(Object o) throws Exception {
        if (o == null) return "null";
        if (o instanceof Object[] a) {
            StringBuilder b = new StringBuilder("[");
            for (Object x : a) b.append(describe(x)).append(',');
            return b.append(']').toString();
        }
        if (o instanceof int[] a) return java.util.Arrays.toString(a);
        if (o instanceof long[] a) return java.util.Arrays.toString(a);
        if (o instanceof double[] a) return java.util.Arrays.toString(a);
        if (!o.getClass().isRecord()) return String.valueOf(o);
        StringBuilder b = new StringBuilder(o.getClass().getSimpleName()).append('(');
        for (RecordComponent c : o.getClass().getRecordComponents()) b.append(c.getName()).append('=').append(describe(c.getAccessor().invoke(o))).append(' ');
        return b.append(')').toString();
    }
}
