"""LoRA fine-tuning of a GPT-2 with PEFT through backend="alloy"; the losses must track eager's.

The model is built from a GPT2Config with random weights (no checkpoint is downloaded); pass a local
checkpoint directory as the first argument to fine-tune that instead. Training mode keeps GPT-2's
dropout: the compiled graph draws its masks from torch's generator as eager does, so both runs, seeded
alike, drop the same activations.
"""
import copy
import sys
import warnings

import peft
import torch
import transformers

import alloy_torch  # noqa: F401  (registers the "alloy" backend)
from alloy_torch.training import set_training_mode


def base_model(path: str | None):
    if path:
        return transformers.AutoModelForCausalLM.from_pretrained(path)
    config = transformers.GPT2Config(n_layer=2, n_embd=64, n_head=4, vocab_size=256, n_positions=64,
                                     bos_token_id=0, eos_token_id=0)
    return transformers.AutoModelForCausalLM.from_config(config)


def main() -> int:
    warnings.simplefilter("ignore")
    set_training_mode(True)  # before torch.compile
    torch.manual_seed(0)
    model = peft.get_peft_model(base_model(sys.argv[1] if len(sys.argv) > 1 else None),
                                peft.LoraConfig(target_modules=["c_attn"], task_type="CAUSAL_LM"))
    eager = copy.deepcopy(model)
    trainable = sum(p.numel() for p in model.parameters() if p.requires_grad)
    total = sum(p.numel() for p in model.parameters())
    print(f"trainable parameters: {trainable} of {total} (the LoRA adapters)")
    step = torch.compile(model, backend="alloy")
    opt = torch.optim.AdamW([p for p in model.parameters() if p.requires_grad], lr=5e-3)
    eager_opt = torch.optim.AdamW([p for p in eager.parameters() if p.requires_grad], lr=5e-3)
    model.train()
    eager.train()
    batches = [torch.randint(0, model.config.vocab_size, (4, 32)) for _ in range(4)]
    worst, first = 0.0, None
    for i in range(20):
        input_ids = batches[i % len(batches)]
        opt.zero_grad()
        torch.manual_seed(100 + i)  # the same dropout masks for both runs
        loss = step(input_ids=input_ids, labels=input_ids).loss
        loss.backward()
        opt.step()
        eager_opt.zero_grad()
        torch.manual_seed(100 + i)
        ref = eager(input_ids=input_ids, labels=input_ids).loss
        ref.backward()
        eager_opt.step()
        worst = max(worst, abs(loss.item() - ref.item()) / ref.item())
        first = loss.item() if first is None else first
        if i % 5 == 0 or i == 19:
            print(f"step {i:2d}  alloy {loss.item():.5f}  eager {ref.item():.5f}")
    frozen = all(torch.equal(a, b) for (name, a), b in zip(model.named_parameters(), eager.parameters())
                 if "lora_" not in name)  # only the adapters moved
    ok = worst < 1e-3 and frozen and loss.item() < first
    print("finetune_lora:", "ok" if ok else f"MISMATCH (relative loss gap {worst:.2e}, base frozen {frozen})")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
