package dev.strata.runtime.cuda;

import org.bytedeco.cuda.global.cudart;
import org.bytedeco.javacpp.BytePointer;
import org.bytedeco.javacpp.Loader;
import org.bytedeco.javacpp.Pointer;
import org.bytedeco.javacpp.PointerPointer;

/** Loading the bindings with a clear error, status checks, and raw device addresses as JavaCPP pointers. */
final class Cuda {
    private Cuda() {}

    /** Loads the CUDA runtime bindings; a missing driver or library becomes an error saying what was looked for. */
    static void load() {
        try {
            Loader.load(cudart.class);
        } catch (UnsatisfiedLinkError | NoClassDefFoundError e) {
            throw new CudaException("cannot load the CUDA runtime (libcudart.so.13 and the driver's libcuda.so.1) through "
                    + "JavaCPP's org.bytedeco:cuda bindings; looked in LD_LIBRARY_PATH=" + System.getenv("LD_LIBRARY_PATH")
                    + " (set it to the CUDA 13 lib directory, e.g. /usr/local/cuda-13.0/targets/x86_64-linux/lib): " + e.getMessage(), e);
        }
    }

    static void check(int status, String call) {
        if (status != 0) {
            BytePointer name = cudart.cudaGetErrorString(status);
            throw new CudaException(call + " failed: " + (name == null ? "error " + status : name.getString()) + " (" + status + ")");
        }
    }

    static void checkDriver(int status, String call) {
        if (status != 0) {
            PointerPointer<BytePointer> msg = new PointerPointer<>(1);
            cudart.cuGetErrorString(status, msg);
            BytePointer p = msg.get(BytePointer.class, 0);
            throw new CudaException(call + " failed: " + (p == null || p.isNull() ? "error " + status : p.getString()) + " (" + status + ")");
        }
    }

    /** A JavaCPP pointer standing for a raw device address (JavaCPP allocates and frees nothing behind it). */
    static Pointer at(long address) { return new Address(address); }

    private static final class Address extends Pointer {
        Address(long a) { address = a; }
    }
}
