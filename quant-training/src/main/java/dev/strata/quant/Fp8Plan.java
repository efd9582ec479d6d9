package dev.strata.quant;

import dev.strata.runtime.Backend;
import dev.strata.runtime.DType;
import dev.strata.runtime.nn.Linear;
import dev.strata.runtime.nn.Parameter;
import java.util.List;

/**
 * Which linear layers run in FP8, applied from outside the model: every linear whose name contains none of the
 * {@code exclude} entries (e.g. "output" keeps the LM head dense) becomes an {@link Fp8Linear}; the others are made by
 * the dense maker. Norms, softmax, embeddings and the loss never see FP8. amaxHistory is the number of steps delayed
 * scaling looks back over; hadamardBlock may be {@link Fp8Linear#FULL_BLOCK}.
 */
public record Fp8Plan(Rotation rotation, int hadamardBlock, Scaling scaling, int amaxHistory, List<String> exclude) {

    public Fp8Plan {
        new Fp8Linear.Settings(rotation, hadamardBlock, true, scaling, amaxHistory); // validates
        exclude = List.copyOf(exclude);
    }

    public boolean excludes(String layer) { return exclude.stream().anyMatch(layer::contains); }

    /**
     * Makes FP8 linears with master weights in {@code params} on {@code backend}, and excluded ones through
     * {@code dense}. Its layers share the operands of an input that several of them read in turn.
     */
    public Linear.Maker maker(Backend backend, DType params, Linear.Maker dense) {
        var settings = new Fp8Linear.Settings(rotation, hadamardBlock, true, scaling, amaxHistory);
        var inputs = new SharedInput();
        return (name, in, out, hasBias) -> excludes(name) ? dense.make(name, in, out, hasBias) : new Fp8Linear(name,
                new Parameter(name + ".weight", Parameter.Kind.LINEAR_WEIGHT, backend.zeros(params, out, in)),
                hasBias ? new Parameter(name + ".bias", Parameter.Kind.BIAS, backend.zeros(params, out)) : null,
                settings, inputs);
    }
}
