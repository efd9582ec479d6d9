package dev.strata.runtime.cuda;

/** A device allocation failed even after the allocator released its cache. */
public final class OutOfDeviceMemory extends CudaException {
    public OutOfDeviceMemory(String message) { super(message); }
}
