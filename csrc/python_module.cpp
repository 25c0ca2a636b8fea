// The Python extension module batchgan_ext._C. Importing it loads the library, whose static
// initialisers register the batchgan ops with the dispatcher (torch.ops.batchgan.*); the
// module itself has no Python functions, as in the extension-cpp example.
#include <Python.h>

extern "C" {
PyObject* PyInit__C(void) {
  static struct PyModuleDef module_def = {
      PyModuleDef_HEAD_INIT, "_C", "batchgan_ext compiled ops (registered as torch.ops.batchgan.*)", -1, nullptr,
  };
  return PyModule_Create(&module_def);
}
}
