// Registers the schemas of the fused minibatch standard deviation layer (Karras et al. 2018).
#include <torch/library.h>

#include "ops/minibatch_stddev/minibatch_stddev_schema.h"

TORCH_LIBRARY_FRAGMENT(batchgan, m) {
  m.def(batchgan::kMinibatchStddevSchema);
  m.def(batchgan::kMinibatchStddevBackwardSchema);
}
