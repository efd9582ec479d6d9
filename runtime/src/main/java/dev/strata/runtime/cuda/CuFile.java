package dev.strata.runtime.cuda;

import dev.strata.runtime.Backend;
import dev.strata.runtime.Tensor;
import java.io.IOException;
import java.nio.channels.FileChannel;
import java.nio.file.Files;
import java.nio.file.OpenOption;
import java.nio.file.Path;
import java.nio.file.StandardOpenOption;
import java.util.HashSet;
import java.util.List;
import java.util.Set;
import org.bytedeco.cuda.cufile.CUfileDescr_t;
import org.bytedeco.cuda.cufile.CUfileError_t;
import org.bytedeco.cuda.cufile.CUfileHandle_t;
import org.bytedeco.cuda.global.cudart;
import org.bytedeco.cuda.global.cufile;
import org.bytedeco.javacpp.Loader;

/**
 * Files read into and written from device memory by cuFile: DMA between the disk and the GPU where the nvidia-fs
 * driver is loaded (GPUDirect Storage), through cuFile's own host buffers where it is not (its compatibility mode).
 * Each transfer opens the file with direct I/O and registers it once for all its parts; the calling thread is made
 * the device's first, since an I/O thread runs these.
 */
final class CuFile implements Backend.FileIo {
    private final int device;
    private final boolean direct; // nvidia-fs is loaded: the DMA path, not the compatibility mode
    private boolean closed;       // the driver's use count drops once

    private CuFile(int device, boolean direct) {
        this.device = device;
        this.direct = direct;
    }

    /** Whether this machine has the nvidia-fs kernel module that GPUDirect Storage's DMA path needs. */
    static boolean gpuDirectStorage() { return Files.isDirectory(Path.of("/sys/module/nvidia_fs")); }

    /**
     * cuFile on device: where nvidia-fs is loaded, or also in the compatibility mode when always. Where the library
     * does not load or the driver does not open: an error when always, else null (why is on standard error).
     */
    static CuFile open(int device, boolean always) {
        boolean gds = gpuDirectStorage();
        if (!gds && !always) return null;
        String failed;
        try {
            Loader.load(cufile.class);
            // a file GPUDirect Storage cannot take falls back to the compatibility mode; without nvidia-fs, every one goes there
            failed = setting(cufile.CUFILE_PARAM_PROPERTIES_ALLOW_COMPAT_MODE);
            if (failed == null && !gds) failed = setting(cufile.CUFILE_PARAM_FORCE_COMPAT_MODE);
            if (failed == null) {
                failed = error(cufile.cuFileDriverOpen());
                if (failed != null) failed = "cuFileDriverOpen failed: " + failed;
            }
        } catch (UnsatisfiedLinkError | NoClassDefFoundError e) {
            failed = "cannot load libcufile.so.0 (looked in LD_LIBRARY_PATH=" + System.getenv("LD_LIBRARY_PATH") + "): " + e.getMessage();
        }
        if (failed == null) return new CuFile(device, gds);
        if (always) throw new CudaException("cuFile: " + failed);
        System.err.println("cuFile: " + failed + "; the optimizer state goes through host memory");
        return null;
    }

    @Override public String describe() {
        return direct ? "read into and written from device memory by cuFile (GPUDirect Storage)"
                : "read into and written from device memory by cuFile in its compatibility mode (no nvidia-fs driver: through host memory)";
    }

    @Override public void read(Path file, List<Part> parts) throws IOException { transfer(file, parts, false); }

    @Override public void write(List<Part> parts, Path file) throws IOException { transfer(file, parts, true); }

    /** The parts between file and device memory, the file opened and registered once. */
    private void transfer(Path file, List<Part> parts, boolean write) throws IOException {
        Cuda.check(cudart.cudaSetDevice(device), "cudaSetDevice(" + device + ") on an I/O thread");
        Path real = file.toRealPath();
        Set<Integer> before = descriptors(real);
        try (FileChannel channel = openDirect(real, write)) {
            Set<Integer> after = descriptors(real);
            after.removeAll(before);
            if (after.size() != 1) throw new IOException(real + ": cannot tell which file descriptor cuFile is to use (" + after + ")");
            CUfileDescr_t descr = new CUfileDescr_t();
            descr.type(cufile.CU_FILE_HANDLE_TYPE_OPAQUE_FD).handle_fd(after.iterator().next());
            CUfileHandle_t handle = new CUfileHandle_t();
            String failed = error(cufile.cuFileHandleRegister(handle, descr));
            if (failed != null) throw new IOException(real + ": cuFileHandleRegister failed: " + failed);
            try {
                for (Part p : parts) {
                    long bytes = p.elements() * p.t().dtype().byteSize(), done = 0;
                    while (done < bytes) {
                        long n = write ? cufile.cuFileWrite(handle, Cuda.at(CudaBackend.address(p.t())), bytes - done, p.offset() + done, done)
                                : cufile.cuFileRead(handle, Cuda.at(CudaBackend.address(p.t())), bytes - done, p.offset() + done, done);
                        if (n <= 0) throw new IOException(real + ": cuFile" + (write ? "Write" : "Read") + " of " + (bytes - done) + " bytes at " + (p.offset() + done)
                                + (n == 0 ? " reached the end of the file" : " failed: " + cufile.cufileop_status_error((int) -n).getString()));
                        done += n;
                    }
                }
            } finally {
                cufile.cuFileHandleDeregister(handle);
            }
        }
    }

    /** file opened with direct I/O, which GPUDirect Storage's DMA needs; without it where the file system refuses (the compatibility mode takes that). */
    private static FileChannel openDirect(Path file, boolean write) throws IOException {
        OpenOption mode = write ? StandardOpenOption.WRITE : StandardOpenOption.READ;
        try {
            return FileChannel.open(file, mode, com.sun.nio.file.ExtendedOpenOption.DIRECT);
        } catch (IOException | UnsupportedOperationException e) {
            return FileChannel.open(file, mode);
        }
    }

    /** The descriptors this process has open on file (its real path), from /proc/self/fd. */
    private static Set<Integer> descriptors(Path file) throws IOException {
        Set<Integer> fds = new HashSet<>();
        try (var links = Files.list(Path.of("/proc/self/fd"))) {
            for (Path link : links.toList()) {
                try {
                    if (Files.readSymbolicLink(link).equals(file)) fds.add(Integer.parseInt(link.getFileName().toString()));
                } catch (IOException | NumberFormatException gone) {
                    // closed while listed (the listing's own descriptor among them)
                }
            }
        }
        return fds;
    }

    /** Turns a cuFile setting on before the driver opens; null when done, or when the driver is open already (its settings stand). */
    private static String setting(int parameter) {
        CUfileError_t status = cufile.cuFileSetParameterBool(parameter, true);
        return status.err() == cufile.CU_FILE_DRIVER_ALREADY_OPEN ? null : prefixed("cuFileSetParameterBool(" + parameter + ") failed: ", error(status));
    }

    private static String prefixed(String prefix, String failed) { return failed == null ? null : prefix + failed; }

    /** A cuFile status as words, null when it is success. */
    private static String error(CUfileError_t status) {
        if (status.err() == cufile.CU_FILE_SUCCESS) return null;
        return cufile.cufileop_status_error(status.err()).getString() + " (" + status.err() + (status.cu_err() != 0 ? ", CUDA " + status.cu_err() : "") + ")";
    }

    @Override public void close() {
        if (closed) return;
        closed = true;
        cufile.cuFileDriverClose();
    }
}
