/**
 * The CUDA backend: device memory through a caching allocator, GEMMs through cuBLASLt, every other op a kernel from a
 * {@code .cu} resource compiled by NVRTC for the device at first use and cached on disk. Bindings are JavaCPP's
 * {@code org.bytedeco:cuda} JNI jar; the CUDA libraries are the host's.
 */
package dev.strata.runtime.cuda;
