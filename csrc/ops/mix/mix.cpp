// Registers the schemas of the mixed-batch gather (BGAN paper, eq. 2, section 3.1).
#include <torch/library.h>

#include "ops/mix/mix_schema.h"

TORCH_LIBRARY_FRAGMENT(batchgan, m) {
  m.def(batchgan::kMixSchema);
  m.def(batchgan::kMixBackwardSchema);
}
