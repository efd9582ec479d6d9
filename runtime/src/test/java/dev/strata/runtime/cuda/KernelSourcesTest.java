package dev.strata.runtime.cuda;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assumptions.assumeTrue;

import java.io.File;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.concurrent.TimeUnit;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.FieldSource;

/**
 * Every kernel compiles with nvcc on the developer's machine, before it ever reaches a GPU: for Hopper with its
 * arch-specific instructions (sm_90a, as the runtime compiles for it), and for the oldest GPU the file supports
 * (Ampere; Ada for FP8), where the Hopper-only paths must drop out.
 */
class KernelSourcesTest {
    static final java.util.List<String> SOURCES = Kernels.SOURCES;

    static Path nvcc() {
        for (String dir : System.getenv().getOrDefault("PATH", "").split(File.pathSeparator)) {
            Path p = Path.of(dir, "nvcc");
            if (Files.isExecutable(p)) return p;
        }
        Path usual = Path.of("/usr/local/cuda/bin/nvcc");
        return Files.isExecutable(usual) ? usual : null;
    }

    @ParameterizedTest
    @FieldSource("SOURCES")
    void compilesForSm90a(String file) throws Exception {
        compile(file, "sm_90a");
    }

    @ParameterizedTest
    @FieldSource("SOURCES")
    void compilesForTheOldestSupportedGpu(String file) throws Exception {
        compile(file, file.equals("fp8.cu") ? "sm_89" : "sm_80");
    }

    private static void compile(String file, String arch) throws Exception {
        Path nvcc = nvcc();
        assumeTrue(nvcc != null, "nvcc not found on PATH or in /usr/local/cuda/bin: kernel " + file + " not compile-checked");
        Path dir = Files.createTempDirectory("kernels");
        for (String f : new String[] {file, "common.cuh"}) Files.writeString(dir.resolve(f), Kernels.resource(f));
        Process p = new ProcessBuilder(nvcc.toString(), "-arch=" + arch, "-std=c++17", "-cubin", "-o", dir.resolve("out.cubin").toString(),
                dir.resolve(file).toString()).redirectErrorStream(true).start();
        String log = new String(p.getInputStream().readAllBytes());
        assertEquals(true, p.waitFor(120, TimeUnit.SECONDS), "nvcc timed out on " + file);
        assertEquals(0, p.exitValue(), "nvcc rejected " + file + " for " + arch + ":\n" + log);
    }
}
