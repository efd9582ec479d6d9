package dev.strata.runtime.cuda;

/** A CUDA, cuBLASLt or NVRTC call failed, or the device is missing; the message says which call and why. */
public class CudaException extends IllegalStateException {
    public CudaException(String message) { super(message); }

    public CudaException(String message, Throwable cause) { super(message, cause); }
}
