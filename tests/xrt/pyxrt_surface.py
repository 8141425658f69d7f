"""The Python surface of XRT's ``pyxrt`` binding, release 2023.2 (XRT 2.16.204), as listed here.

A listing written for this project (names and argument kinds only), taken
by reading the binding's source at the tag ``202320.2.16.204`` of
github.com/Xilinx/XRT (src/python/pybind11/src/pyxrt.cpp). 2023.2 is the
newest XRT the U250 platform ``xilinx_u250_gen3x16_xdma_4_1_202210_1``
supports (UG1120: XRT 2022.1 onwards, supported through 2023). Every name
the ``xrt`` backend uses is bound with the same overloads from XRT 2022.1
(2.13.466) on, except ``hw_context``, which 2023.1 added and which the
backend uses only where present.

``CLASSES`` maps each class to its methods; each method to its overloads;
each overload to the kinds of its positional arguments after ``self``:
``int``, ``str``, ``buffer`` (anything with the buffer protocol), ``any``
(pybind11 ``py::args``: any number of anything), or a class or enum name of
this listing. ``ENUMS`` maps each enum to its values. ``MODULE_ATTRIBUTES``
are plain module-level names. Not bound (and so absent here):
``kernel.write_register`` / ``read_register`` (removed in 2021.2),
``xclbin.kernel.get_cus``, anything of ``xrt::ip``.
"""

RELEASE = "2023.2"
TAG = "202320.2.16.204"

CLASSES = {
    "uuid": {
        "__init__": [("str",)],
        "to_string": [()],
    },
    "hw_context": {
        "__init__": [(), ("device", "uuid")],
    },
    "device": {
        "__init__": [(), ("int",), ("str",)],
        "load_xclbin": [("str",), ("xclbin",)],
        "register_xclbin": [("xclbin",)],
        "get_xclbin_uuid": [()],
        "get_info": [("xrt_info_device",)],
    },
    "run": {
        "__init__": [(), ("kernel",)],
        "start": [()],
        "set_arg": [("int", "bo"), ("int", "int")],
        "wait": [(), ("int",)],
        "state": [()],
        "add_callback": [("ert_cmd_state", "any", "any")],
    },
    "kernel": {
        "__init__": [("device", "uuid", "str", "kernel.cu_access_mode"),
                     ("device", "uuid", "str"), ("hw_context", "str")],
        "__call__": [("any",)],
        "group_id": [("int",)],
    },
    "bo": {
        "__init__": [("device", "int", "bo.flags", "int"), ("bo", "int", "int")],
        "write": [("buffer", "int")],
        "read": [("int", "int")],
        "sync": [("xclBOSyncDirection", "int", "int"), ("xclBOSyncDirection",)],
        "map": [()],
        "size": [()],
        "address": [()],
    },
    "xclbin": {
        "__init__": [(), ("str",), ("any",)],
        "get_kernels": [()],
        "get_xsa_name": [()],
        "get_uuid": [()],
        "get_mems": [()],
        "get_axlf": [()],
    },
    "xclbin.xclbinip": {
        "__init__": [()],
        "get_name": [()],
    },
    "xclbin.xclbinkernel": {
        "__init__": [()],
        "get_name": [()],
        "get_num_args": [()],
    },
    "xclbin.xclbinmem": {
        "__init__": [()],
        "get_tag": [()],
        "get_base_address": [()],
        "get_size_kb": [()],
        "get_used": [()],
        "get_index": [()],
    },
}

ENUMS = {
    "xclBOSyncDirection": ("XCL_BO_SYNC_BO_TO_DEVICE", "XCL_BO_SYNC_BO_FROM_DEVICE",
                           "XCL_BO_SYNC_BO_GMIO_TO_AIE", "XCL_BO_SYNC_BO_AIE_TO_GMIO"),
    "ert_cmd_state": ("ERT_CMD_STATE_NEW", "ERT_CMD_STATE_QUEUED", "ERT_CMD_STATE_COMPLETED",
                      "ERT_CMD_STATE_ERROR", "ERT_CMD_STATE_ABORT", "ERT_CMD_STATE_SUBMITTED",
                      "ERT_CMD_STATE_TIMEOUT", "ERT_CMD_STATE_NORESPONSE",
                      "ERT_CMD_STATE_SKERROR", "ERT_CMD_STATE_SKCRASHED"),
    "xrt_info_device": ("bdf", "interface_uuid", "kdma", "max_clock_frequency_mhz", "m2m",
                        "name", "nodma", "offline", "electrical", "thermal", "mechanical",
                        "memory", "platform", "pcie_info", "host", "dynamic_regions", "vmr"),
    # Enums declared with export_values(): their values are also attributes of the class.
    "kernel.cu_access_mode": ("exclusive", "shared", "none"),
    "bo.flags": ("normal", "cacheable", "device_only", "host_only", "p2p", "svm"),
}

#: Enums whose values are also exported onto their enclosing class (``bo.normal``).
EXPORTED = ("kernel.cu_access_mode", "bo.flags")

MODULE_ATTRIBUTES = ("XCL_BO_FLAGS_NONE", "xclbinip_vector", "xclbinkernel_vector",
                     "xclbinmem_vector")
