// Registers the schemas of the permutation-equivariant layers (BGAN paper, section 4).
#include <torch/library.h>

#include "ops/equivariant/equivariant_schema.h"

TORCH_LIBRARY_FRAGMENT(batchgan, m) {
  m.def(batchgan::kEquivariantConv2dSchema);
  m.def(batchgan::kEquivariantConv2dForwardSchema);
  m.def(batchgan::kEquivariantConv2dBackwardSchema);
  m.def(batchgan::kEquivariantLinearSchema);
  m.def(batchgan::kEquivariantLinearForwardSchema);
  m.def(batchgan::kEquivariantLinearBackwardSchema);
  m.def(batchgan::kSetMeanSchema);
  m.def(batchgan::kSetMeanBackwardSchema);
}
