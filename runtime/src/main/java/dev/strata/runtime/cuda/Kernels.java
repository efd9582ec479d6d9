package dev.strata.runtime.cuda;

import dev.strata.runtime.Tensor;
import java.io.IOException;
import java.io.InputStream;
import java.io.UncheckedIOException;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.nio.file.StandardCopyOption;
import java.security.MessageDigest;
import java.util.HashMap;
import java.util.HexFormat;
import java.util.List;
import java.util.Map;
import org.bytedeco.cuda.cudart.CUfunc_st;
import org.bytedeco.cuda.cudart.CUmod_st;
import org.bytedeco.cuda.cudart.CUstream_st;
import org.bytedeco.cuda.global.cudart;
import org.bytedeco.cuda.global.nvrtc;
import org.bytedeco.cuda.nvrtc._nvrtcProgram;
import org.bytedeco.javacpp.BytePointer;
import org.bytedeco.javacpp.LongPointer;
import org.bytedeco.javacpp.PointerPointer;
import org.bytedeco.javacpp.SizeTPointer;

/**
 * The kernels of {@code dev/strata/runtime/cuda/*.cu}: compiled by NVRTC for the device's architecture at first use,
 * cached on disk as cubin keyed by the SHA-256 of sources, options and architecture, loaded as modules, launched on
 * the backend's stream. A kernel that does not compile fails with the file's name and NVRTC's log.
 */
final class Kernels {
    static final String RESOURCES = "/dev/strata/runtime/cuda/";
    /** Every kernel source; the CPU test suite compiles each with nvcc too. */
    static final List<String> SOURCES = List.of("elementwise.cu", "reduce.cu", "norms.cu", "cross_entropy.cu", "attention.cu", "attention_mma.cu", "optimizer.cu", "fp8.cu");
    static final List<String> HEADERS = List.of("common.cuh");
    private static final int DEFAULT_SHARED = 48 * 1024, ARG_SLOTS = 32;

    private final String arch;
    private final Path cacheDir;
    private final CUstream_st stream;
    private final OpTimer timer;
    private final Map<String, CUmod_st> modules = new HashMap<>();
    private final Map<String, CUfunc_st> functions = new HashMap<>();
    private final Map<CUfunc_st, Integer> sharedLimits = new HashMap<>(); // raised above the default 48 KiB
    private final Map<String, Integer> residentBlocks = new HashMap<>();
    // Kernel arguments go through slots allocated once: a native allocation per argument per launch cost more host
    // time than small kernels take on the GPU.
    private final LongPointer[] argSlots = new LongPointer[ARG_SLOTS];
    private final PointerPointer<LongPointer> argPointers = new PointerPointer<>(ARG_SLOTS);

    Kernels(int major, int minor, CUstream_st stream, OpTimer timer) {
        for (int i = 0; i < ARG_SLOTS; i++) argPointers.put(i, argSlots[i] = new LongPointer(1));
        this.arch = "sm_" + major + minor + (major == 9 ? "a" : ""); // sm_90a: Hopper's wgmma needs the arch-specific target
        this.stream = stream;
        this.timer = timer;
        String configured = System.getProperty("strata.kernel_cache");
        String xdg = System.getenv("XDG_CACHE_HOME");
        this.cacheDir = configured != null ? Path.of(configured)
                : Path.of(xdg != null ? xdg : System.getProperty("user.home") + "/.cache", "strata", "kernels");
    }

    /** Launches {@code name} from {@code file}; args are tensors (their device address), null, Integer, Long or Float. */
    void launch(String file, String name, int gridX, int gridY, int gridZ, int block, Object... args) {
        launchWith(file, name, gridX, gridY, gridZ, block, 1, 0, args);
    }

    /** As {@link #launch}, with a two-dimensional block (blockX, blockY). */
    void launch2d(String file, String name, int gridX, int gridY, int gridZ, int blockX, int blockY, Object... args) {
        launchWith(file, name, gridX, gridY, gridZ, blockX, blockY, 0, args);
    }

    /** As {@link #launch2d}, with {@code sharedBytes} of dynamic shared memory per block. */
    void launchWith(String file, String name, int gridX, int gridY, int gridZ, int blockX, int blockY, int sharedBytes, Object... args) {
        CUfunc_st f = function(file, name, sharedBytes);
        if (args.length > ARG_SLOTS) throw new IllegalArgumentException(name + " takes " + args.length + " arguments, more than " + ARG_SLOTS);
        synchronized (argSlots) { // cuLaunchKernel copies the arguments, so the slots are free again when it returns
            for (int i = 0; i < args.length; i++) {
                // 8 bytes a slot; a 4-byte int or float sits in its low half (little-endian), where the driver reads it
                long bits = switch (args[i]) {
                    case null -> 0L;
                    case Tensor t -> CudaBackend.address(t);
                    case Long l -> l;
                    case Integer n -> n & 0xffffffffL;
                    case Float x -> Float.floatToRawIntBits(x) & 0xffffffffL;
                    default -> throw new IllegalArgumentException("kernel argument of type " + args[i].getClass());
                };
                argSlots[i].put(bits);
            }
            timer.time(name, () -> Cuda.checkDriver(cudart.cuLaunchKernel(f, gridX, gridY, gridZ, blockX, blockY, 1, sharedBytes, stream, argPointers, null),
                    "cuLaunchKernel(" + name + ")"));
        }
    }

    /** How many blocks of {@code block} threads and {@code sharedBytes} of dynamic shared memory fit on one SM at once. */
    int residentBlocks(String file, String name, int block, int sharedBytes) {
        return residentBlocks.computeIfAbsent(file + ":" + name + ":" + block + ":" + sharedBytes, key -> {
            int[] blocks = new int[1];
            Cuda.checkDriver(cudart.cuOccupancyMaxActiveBlocksPerMultiprocessor(blocks, function(file, name, sharedBytes), block, sharedBytes),
                    "cuOccupancyMaxActiveBlocksPerMultiprocessor(" + name + ")");
            return Math.max(1, blocks[0]);
        });
    }

    /** The function, allowed {@code sharedBytes} of dynamic shared memory. */
    private CUfunc_st function(String file, String name, int sharedBytes) {
        CUfunc_st f = function(file, name);
        if (sharedBytes > DEFAULT_SHARED && sharedLimits.getOrDefault(f, DEFAULT_SHARED) < sharedBytes) {
            Cuda.checkDriver(cudart.cuFuncSetAttribute(f, cudart.CU_FUNC_ATTRIBUTE_MAX_DYNAMIC_SHARED_SIZE_BYTES, sharedBytes),
                    "cuFuncSetAttribute(" + name + ", " + sharedBytes + " bytes of shared memory)");
            // all of the SM's on-chip memory as shared memory, so several such blocks fit on an SM
            Cuda.checkDriver(cudart.cuFuncSetAttribute(f, cudart.CU_FUNC_ATTRIBUTE_PREFERRED_SHARED_MEMORY_CARVEOUT, cudart.CU_SHAREDMEM_CARVEOUT_MAX_SHARED),
                    "cuFuncSetAttribute(" + name + ", shared memory carveout)");
            sharedLimits.put(f, sharedBytes);
        }
        return f;
    }

    private synchronized CUfunc_st function(String file, String name) {
        String key = file + ":" + name;
        CUfunc_st f = functions.get(key);
        if (f != null) return f;
        CUmod_st module = modules.computeIfAbsent(file, this::load);
        f = new CUfunc_st();
        Cuda.checkDriver(cudart.cuModuleGetFunction(f, module, name), "cuModuleGetFunction(" + name + " in " + file + ")");
        functions.put(key, f);
        return f;
    }

    private CUmod_st load(String file) {
        byte[] cubin = cubin(file);
        CUmod_st module = new CUmod_st();
        try (BytePointer image = new BytePointer(cubin)) {
            Cuda.checkDriver(cudart.cuModuleLoadData(module, image), "cuModuleLoadData(" + file + ")");
        }
        return module;
    }

    private String[] options() { return new String[] {"--gpu-architecture=" + arch, "--std=c++17", "-default-device"}; }

    /** The cubin for a file, from the disk cache or compiled now. */
    byte[] cubin(String file) {
        String source = resource(file);
        StringBuilder keyText = new StringBuilder(source).append('\0').append(String.join(" ", options()));
        for (String h : HEADERS) keyText.append('\0').append(resource(h));
        Path cached = cacheDir.resolve(file.replace(".cu", "") + "-" + arch + "-" + sha256(keyText.toString()).substring(0, 16) + ".cubin");
        try {
            if (Files.isRegularFile(cached)) return Files.readAllBytes(cached);
            byte[] cubin = compile(file, source);
            Files.createDirectories(cacheDir);
            Path tmp = Files.createTempFile(cacheDir, "kernel", ".tmp");
            Files.write(tmp, cubin);
            Files.move(tmp, cached, StandardCopyOption.ATOMIC_MOVE, StandardCopyOption.REPLACE_EXISTING);
            return cubin;
        } catch (IOException e) {
            throw new UncheckedIOException("kernel cache " + cacheDir + ": " + e.getMessage(), e);
        }
    }

    private byte[] compile(String file, String source) {
        _nvrtcProgram program = new _nvrtcProgram();
        // Built from strings, a PointerPointer keeps its strings reachable; put(i, pointer) keeps only the address, and
        // a string the collector frees before NVRTC reads it made a cold-cache compile fail now and then.
        String[] o = options();
        try (PointerPointer<BytePointer> headers = new PointerPointer<>(HEADERS.stream().map(Kernels::resource).toArray(String[]::new));
             PointerPointer<BytePointer> names = new PointerPointer<>(HEADERS.toArray(String[]::new));
             PointerPointer<BytePointer> opts = new PointerPointer<>(o)) {
            check(nvrtc.nvrtcCreateProgram(program, new BytePointer(source), new BytePointer(file), HEADERS.size(), headers, names),
                    "nvrtcCreateProgram", file);
            int status = nvrtc.nvrtcCompileProgram(program, o.length, opts);
            if (status != nvrtc.NVRTC_SUCCESS)
                throw new CudaException("kernel " + RESOURCES + file + " does not compile for " + arch + ":\n" + log(program));
            SizeTPointer size = new SizeTPointer(1);
            check(nvrtc.nvrtcGetCUBINSize(program, size), "nvrtcGetCUBINSize", file);
            byte[] cubin = new byte[(int) size.get()];
            check(nvrtc.nvrtcGetCUBIN(program, cubin), "nvrtcGetCUBIN", file);
            return cubin;
        } finally {
            nvrtc.nvrtcDestroyProgram(program);
        }
    }

    private static String log(_nvrtcProgram program) {
        SizeTPointer size = new SizeTPointer(1);
        nvrtc.nvrtcGetProgramLogSize(program, size);
        byte[] log = new byte[(int) size.get()];
        nvrtc.nvrtcGetProgramLog(program, log);
        return new String(log, StandardCharsets.UTF_8).trim();
    }

    private static void check(int status, String call, String file) {
        if (status != nvrtc.NVRTC_SUCCESS)
            throw new CudaException(call + " for " + file + " failed: " + nvrtc.nvrtcGetErrorString(status).getString());
    }

    static String resource(String name) {
        try (InputStream in = Kernels.class.getResourceAsStream(RESOURCES + name)) {
            if (in == null) throw new IllegalStateException("kernel source " + RESOURCES + name + " is missing from the classpath");
            return new String(in.readAllBytes(), StandardCharsets.UTF_8);
        } catch (IOException e) {
            throw new UncheckedIOException(e);
        }
    }

    private static String sha256(String text) {
        try {
            return HexFormat.of().formatHex(MessageDigest.getInstance("SHA-256").digest(text.getBytes(StandardCharsets.UTF_8)));
        } catch (java.security.NoSuchAlgorithmException e) {
            throw new IllegalStateException(e);
        }
    }
}
