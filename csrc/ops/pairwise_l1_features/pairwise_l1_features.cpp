// Registers the schemas of the fused minibatch-discrimination features (Salimans et al. 2016,
// section 3.2).
#include <torch/library.h>

#include "ops/pairwise_l1_features/pairwise_l1_features_schema.h"

TORCH_LIBRARY_FRAGMENT(batchgan, m) {
  m.def(batchgan::kPairwiseL1FeaturesSchema);
  m.def(batchgan::kPairwiseL1FeaturesBackwardSchema);
}
