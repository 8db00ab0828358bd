// The Python module `gan_mask_rcnn.ops._C`: importing it runs the static
// registrations of the ops (their schemas in prroi_pool.cpp and
// prroi_pool_max_levels.cpp, their kernels per backend in cpu/, cuda/ and
// autocast/); autograd and the fake kernels are registered in Python
// (gan_mask_rcnn/ops/prroi_pool.py, prroi_pool_max_levels.py).
#include <Python.h>

extern "C" {
// A module with no functions.
PyObject* PyInit__C(void) {
  static struct PyModuleDef module_def = {PyModuleDef_HEAD_INIT, "_C", nullptr,
                                          -1, nullptr};
  return PyModule_Create(&module_def);
}
}
