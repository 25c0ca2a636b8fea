// Registers the schemas of the Bernoulli-KL loss on mixed batches (BGAN paper, eq. 3-4, 13, 14).
#include <torch/library.h>

#include "ops/bernoulli_kl_loss/bernoulli_kl_loss_schema.h"

TORCH_LIBRARY_FRAGMENT(batchgan, m) {
  m.def(batchgan::kBernoulliKLLossSchema);
  m.def(batchgan::kBernoulliKLLossBackwardSchema);
}
