package dev.strata.offload;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import dev.strata.runtime.Backend;
import dev.strata.runtime.DType;
import dev.strata.runtime.cpu.CpuBackend;
import dev.strata.runtime.nn.Parameter;
import java.io.IOException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.List;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

/**
 * The nvme tier tries the file I/O it is given (cuFile on a GPU) before the run: one that cannot take files there
 * stops a run that asked for it, with nothing left behind, and otherwise leaves the GPU's subgroups to the blocks.
 */
class NvmeStateStoreTest {
    static final CpuBackend CPU = CpuBackend.INSTANCE;

    /** File I/O that cannot register a file, as cuFile cannot where udev says nothing of the volume. */
    static final class Refusing implements Backend.FileIo {
        boolean closed;

        @Override public String describe() { return "refusing"; }

        @Override public void read(Path file, List<Part> parts) throws IOException { throw new IOException(file + ": no volume attributes"); }

        @Override public void write(List<Part> parts, Path file) throws IOException { throw new IOException(file + ": no volume attributes"); }

        @Override public void close() { closed = true; }
    }

    @Test
    void fileIoThatCannotTakeFilesIsRefusedBeforeTheRun(@TempDir Path dir) throws Exception {
        List<Subgroup> subgroups = List.of(Subgroup.of(0, List.of(new Parameter("w", Parameter.Kind.LINEAR_WEIGHT, CPU.zeros(DType.F32, 256))), true));
        Refusing asked = new Refusing();
        var e = assertThrows(IllegalArgumentException.class, () -> new NvmeStateStore(CPU, subgroups, 4, dir, asked, true));
        assertTrue(e.getMessage().startsWith("offload.cufile = true, but cuFile cannot move files under " + dir + " to the GPU and back: ")
                && e.getMessage().contains("no volume attributes") && e.getMessage().endsWith("set offload.cufile = auto or false"), e.getMessage());
        assertTrue(asked.closed, "the refused I/O is let go");
        try (var left = Files.list(dir)) {
            assertEquals(List.of(), left.toList(), "nothing left under nvme_dir");
        }
        Refusing auto = new Refusing();
        try (NvmeStateStore store = new NvmeStateStore(CPU, subgroups, 4, dir, auto, false)) {
            assertTrue(auto.closed && !store.direct(subgroups.get(0)), "auto: the GPU's subgroups go through the blocks");
            assertTrue(store.describe().contains("cuFile could not take files there (") && store.describe().contains("no volume attributes"), store.describe());
        }
    }
}
