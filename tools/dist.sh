#!/usr/bin/env bash
# Builds the self-contained GPU node bundle in dist/strata-node: a jlink'd Java runtime, the jars a GPU node needs
# (no ND4J; no Hadoop unless --with-hdfs; the cluster's worker unless --no-cluster) and bin/strata. With --tests it also puts the test classes and JUnit's console launcher in
# dist/strata-node/tests, to run the gpu-tagged tests on a machine without a JDK or Maven. With --pack it also
# writes dist/strata-node.tar.xz (about 46 MB with the cluster's worker), which fits beside the tree in the 64 MiB that travels to the GPU
# machine, where `tar -xJf dist/strata-node.tar.xz -C dist` unpacks it.
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
OUT="$ROOT/dist/strata-node"
: "${JAVA_HOME:?JAVA_HOME must point at a JDK 21+ (the strata launcher sets it)}"

(cd "$ROOT" && mvn -B -q -DskipTests package 2>&1 | sed -u 's/\x1b\[[0-9;]*m//g')  # without Maven's colour resets
rm -rf "$OUT" && mkdir -p "$OUT/lib" "$OUT/bin"

# The CPU backend's GEMM library stays out: a GPU node computes on the GPU (it runs `strata cluster worker`, not the coordinator). HDFS support (48 MB of Hadoop) only
# with --with-hdfs, for checkpoint.dir = hdfs://... Pekko stays in: ranks find each other (and NCCL's unique id) through it.
with_hdfs=false; [[ " $* " == *" --with-hdfs "* ]] && with_hdfs=true
# --no-cluster: a GPU box that runs tests and benchmarks, never a cluster's worker (the device machine's carry limit).
no_cluster=false; [[ " $* " == *" --no-cluster "* ]] && no_cluster=true
for jar in $(tr ':' '\n' < "$ROOT/trainer/target/classpath.txt"); do
  case "$(basename "$jar")" in
    hadoop-client-api-*|hadoop-client-runtime-*|strata-checkpoints-hdfs-*|snappy-java-*|jsr305-*) if $with_hdfs; then cp "$jar" "$OUT/lib/"; fi ;;
    scala-reflect-*|scala-parser-*|nd4j-*|openblas-*|hadoop-*|guava-*|protobuf-*|flatbuffers-*|oshi-*|jna-*|commons-*|byteunits-*|threetenbp-*|neoitertools-*|jackson-1.0.0-M2*) ;;
    # The cluster's worker agent runs on a GPU node; the coordinator's REST API (Pekko HTTP), its job database
    # (H2, PostgreSQL's driver) and Pekko's durable distributed data (LMDB through JNR) run from a full install.
    pekko-http*|pekko-parsing*|parboiled*|lmdbjava-*|jnr-*|jffi-*|h2-*|postgresql-*|checker-qual-*) ;;
    strata-cluster-[0-9]*|pekko-cluster*|pekko-actor-typed*|pekko-slf4j*|pekko-coordination*|pekko-distributed-data*|kryo-*|reflectasm-*|objenesis-*|minlog-*)
      if ! $no_cluster; then cp "$jar" "$OUT/lib/"; fi ;;
    *) cp "$jar" "$OUT/lib/" ;;
  esac
done
for m in runtime quant-training parallel checkpoints cluster-config trainer; do cp "$ROOT/$m/target/strata-$m-"*.jar "$OUT/lib/"; done

# The CUDA JNI jar carries bindings for every CUDA library; keep those Strata calls (runtime, cuBLAS(Lt), NVRTC,
# NCCL, cuDNN, cuFile) and drop NPP, nvJPEG, cuFFT, cuSOLVER, cuSPARSE, nvCOMP, CUPTI, cuRAND.
cuda_jni="$(ls "$OUT"/lib/cuda-*-linux-x86_64.jar)"
(cd "$OUT/lib" && zip -q -d "$cuda_jni" '*/libjninpp*' '*/libjninvjpeg*' '*/libjnicufft*' '*/libjnicusolver*' \
  '*/libjnicusparse*' '*/libjninvcomp*' '*/libjnicupti*' '*/libjnicurand*' '*/libjninvblas*' >/dev/null)

# The tokenizers jar carries its native library for every platform; a GPU node is linux-x86_64.
tokenizers_jar="$(ls "$OUT"/lib/tokenizers-*.jar 2>/dev/null || true)"
if [[ -n "$tokenizers_jar" ]]; then
  (cd "$OUT/lib" && zip -q -d "$tokenizers_jar" 'native/lib/linux-aarch64/*' 'native/lib/osx-*' 'native/lib/win-*' >/dev/null || true)
fi
modules=java.base,java.logging,java.management,java.naming,java.sql,jdk.jfr,jdk.unsupported,jdk.incubator.vector,jdk.zipfs
if $with_hdfs; then modules="$modules,java.se,jdk.security.auth,jdk.security.jgss"; fi  # Hadoop's client: XML, Kerberos, SASL, JMX
"$JAVA_HOME/bin/jlink" --add-modules "$modules" \
  --strip-java-debug-attributes --strip-native-debug-symbols=objcopy=/usr/bin/objcopy --no-header-files --no-man-pages --compress=zip-9 \
  --output "$OUT/runtime" 2>&1 | { grep -v "Using incubator modules" || true; }

cat > "$OUT/bin/strata" <<'LAUNCH'
#!/usr/bin/env bash
# strata on a GPU node: the bundled Java runtime, the host's CUDA 13 libraries.
HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
CUDA_LIB="${CUDA_HOME:-/usr/local/cuda-13.0}/targets/x86_64-linux/lib"
export LD_LIBRARY_PATH="$CUDA_LIB:/usr/lib/x86_64-linux-gnu${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}"
TTY=(); if [[ -t 1 ]]; then TTY=(-Dstrata.tty=true); fi
rc=0
# JavaCPP refuses allocations once the process's resident memory passes twice the heap; offloaded optimizer state
# pins far more than that, on purpose.
"$HERE/runtime/bin/java" -Xss8m --add-modules jdk.incubator.vector --enable-native-access=ALL-UNNAMED -Dorg.bytedeco.javacpp.maxPhysicalBytes=0 "${TTY[@]}" \
  --sun-misc-unsafe-memory-access=allow ${STRATA_JAVA_OPTS:-} -cp "$HERE/lib/*" dev.strata.trainer.cli.Main "$@" \
  2> >(grep -v --line-buffered '^WARNING: Using incubator modules' >&2) || rc=$?
wait 2>/dev/null || true  # the filter, so its last lines come before the prompt
exit $rc
LAUNCH
chmod +x "$OUT/bin/strata"

if [[ " $* " == *" --tests "* ]]; then
  (cd "$ROOT" && mvn -B -q -DskipTests test-compile 2>&1 | sed -u 's/\x1b\[[0-9;]*m//g')
  mkdir -p "$OUT/tests"
  for m in runtime quant-training parallel checkpoints trainer; do cp -r "$ROOT/$m/target/test-classes" "$OUT/tests/$m"; done
  junit=~/.m2/repository/org/junit/platform/junit-platform-console-standalone
  [[ -d "$junit" ]] || (cd "$ROOT" && mvn -B -q dependency:get -Dartifact=org.junit.platform:junit-platform-console-standalone:1.14.1)
  cp "$(find "$junit" -name '*.jar' | sort | tail -1)" "$OUT/tests/junit-console.jar"
  cat > "$OUT/bin/test-gpu" <<'TESTS'
#!/usr/bin/env bash
# Runs the gpu-tagged tests with the bundled runtime (no JDK or Maven needed).
HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
export LD_LIBRARY_PATH="${CUDA_HOME:-/usr/local/cuda-13.0}/targets/x86_64-linux/lib:/usr/lib/x86_64-linux-gnu${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}"
CP="$HERE/tests/runtime:$HERE/tests/quant-training:$HERE/tests/parallel:$HERE/tests/checkpoints:$HERE/tests/trainer"
for jar in "$HERE"/lib/*.jar; do CP="$CP:$jar"; done
# Everything on the JVM's own class path, so a test that starts worker JVMs hands them the same classes.
exec "$HERE/runtime/bin/java" -Xss8m --add-modules jdk.incubator.vector --enable-native-access=ALL-UNNAMED \
  --sun-misc-unsafe-memory-access=allow -cp "$CP:$HERE/tests/junit-console.jar" org.junit.platform.console.ConsoleLauncher execute \
  --include-tag gpu --scan-classpath --details=tree --disable-banner --disable-ansi-colors "$@"
TESTS
  chmod +x "$OUT/bin/test-gpu"
fi
du -sh "$OUT" "$OUT/runtime" "$OUT/lib"
if [[ " $* " == *" --pack "* ]]; then
  # Jars stored, not deflated: xz then compresses across every class file at once (a third smaller packed).
  scratch="$(mktemp -d)"; trap 'rm -rf "$scratch"' EXIT
  for jar in "$OUT"/lib/*.jar "$OUT"/tests/*.jar; do
    [[ -f "$jar" ]] || continue
    rm -rf "$scratch"/x && mkdir "$scratch"/x && (cd "$scratch"/x && unzip -q "$jar" && rm "$jar" && zip -q -0 -r -X "$jar" .)
  done
  tar -C "$ROOT/dist" -cf - strata-node | xz -T0 -6 > "$ROOT/dist/strata-node.tar.xz"
  du -sh "$ROOT/dist/strata-node.tar.xz"
fi
