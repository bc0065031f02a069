"""Character-level transformer language model on the embedded corpus (Python's documentation topics).

    python -m jgen train --config experiments/configs/charlm.py --workdir runs/charlm

The corpus (`pydoc_data.topics`, ~465k characters, 103 distinct) ships with Python: nothing is downloaded.
Fixed split by position: 90% train, 5% validation, 5% test; windows of 128 characters. A 2-layer pre-norm
transformer (d_model 128, 4 heads, RoPE) is trained on 600 batches of 32 windows (about 6 passes over the
training text). Reported at evaluation on the test split: `nll` (nats per character) and `bpc` (bits per
character); perplexity per character = exp(nll) = 2^bpc.
Measured (this config, seed 0): test bpc 1.748, nll 1.212 nats per character, perplexity per character
exp(1.212) = 3.36 (train bpc 1.68 at the end). 6 min 33 s wall-clock on a loaded 2-core CPU (203 s of CPU time).
Perplexity is exp of the split's mean `nll`: the loop averages per-window values, each window holding the
same number of characters, so the mean of the windows' `nll` is the mean per character.
"""

from jgen.config import base_config
from jgen.methods.autoregressive import Autoregressive


def get_config():
    c = base_config()
    c.name = "charlm"
    c.data.name = "pydoc_text"
    c.data.text_unit = "char"  # char (103 symbols) | byte (UTF-8, 256)
    c.data.seq_len = 128
    c.data.test_split = "test"  # test | validation
    c.data.batch_size = 32
    d = Autoregressive.defaults()
    c.method, c.model, c.optim = d.method, d.model, d.optim
    c.method.levels = 256  # pixel options: unused by a text model
    c.method.conditional = False
    c.method.temperature = 0.8  # sampling
    c.method.top_k = 0
    c.method.top_p = 0.95
    c.model.d_model = 128
    c.model.num_layers = 2
    c.model.num_heads = 4
    c.model.mlp_ratio = 4
    c.model.dropout = 0.0
    c.model.positions = "rope"
    c.model.tie_embeddings = False
    c.optim.learning_rate = 3e-3
    c.optim.warmup_steps = 50
    c.train.steps = 600
    c.train.log_every = 20
    c.train.eval_every = 0
    c.train.sample_every = -1  # text samples: see generate_text / the decoding benchmark
    c.train.checkpoint_every = 300
    c.train.eval_batch_size = 181
    c.train.ema_decay = 0.99
    return c
