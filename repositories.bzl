"""The repositories anode's libraries need, for a project that uses anode.

In the other project's WORKSPACE (Bazel 4.2, Debian's bazel-bootstrap):

    local_repository(name = "anode", path = "/path/to/anode")
    load("@anode//:repositories.bzl", "anode_repositories")
    anode_repositories()

and in its .bazelrc `build --cxxopt=-std=c++20 --host_cxxopt=-std=c++20`.
Then depend on `@anode//autodiff`, `@anode//ode`, `@anode//models` or
`@anode//datasets`. Everything is offline: the system libraries are Debian's
(libxsimd-dev, zlib1g-dev, nlohmann-json3-dev) under /usr, and the two
repositories Bazel 4.2 would otherwise download for C++ builds are generated
stand-ins (rules_java is Debian's bazel-rules-java). A repository the project already declares (say its own `zlib`) is
kept, not redefined.
"""

def _stub_repository_impl(ctx):
    ctx.file("WORKSPACE", "workspace(name = \"%s\")\n" % ctx.name)
    for path, content in ctx.attr.files.items():
        ctx.file(path, content)

# A repository made of the given files (path -> content), nothing downloaded.
_stub_repository = repository_rule(
    implementation = _stub_repository_impl,
    attrs = {"files": attr.string_dict()},
)

# The same stand-ins as anode's own third_party/rules_cc and
# third_party/remote_coverage_tools.
_RULES_CC_DEFS = """\"\"\"Offline stand-in for rules_cc: re-exports Bazel 4.2's native C++ rules.\"\"\"

cc_library = native.cc_library
cc_binary = native.cc_binary
cc_test = native.cc_test
cc_import = native.cc_import
cc_toolchain = native.cc_toolchain
cc_toolchain_suite = native.cc_toolchain_suite
"""

_COVERAGE_BUILD = """# Coverage is not used; Bazel only needs these labels to exist offline.
filegroup(name = "coverage_report_generator", visibility = ["//visibility:public"])
filegroup(name = "lcov_merger", visibility = ["//visibility:public"])
"""

def _maybe(rule, name, **kwargs):
    if not native.existing_rule(name):
        rule(name = name, **kwargs)

def anode_repositories():
    """Declares what @anode//autodiff, //ode, //models and //datasets need."""

    # Bazel 4.2 resolves its C++ toolchain through @rules_cc and its registered
    # Java toolchains through @rules_java (Debian's bazel-rules-java), and every
    # test rule names @remote_coverage_tools: without these it downloads them.
    _maybe(
        _stub_repository,
        name = "rules_cc",
        files = {
            "BUILD": "",
            "cc/BUILD": "exports_files([\"defs.bzl\"])\n",
            "cc/defs.bzl": _RULES_CC_DEFS,
        },
    )
    _maybe(
        native.local_repository,
        name = "rules_java",
        path = "/usr/share/bazel/rules/java",
    )
    _maybe(
        _stub_repository,
        name = "remote_coverage_tools",
        files = {"BUILD": _COVERAGE_BUILD},
    )

    # Debian's system libraries (header-only xsimd for //autodiff; zlib for
    # //models and //datasets; nlohmann-json for //models and //datasets:mnist).
    _maybe(
        native.new_local_repository,
        name = "xsimd",
        build_file = "@anode//third_party:xsimd.BUILD",
        path = "/usr",
    )
    _maybe(
        native.new_local_repository,
        name = "zlib",
        build_file = "@anode//third_party:zlib.BUILD",
        path = "/usr",
    )
    _maybe(
        native.new_local_repository,
        name = "nlohmann_json",
        build_file = "@anode//third_party:nlohmann_json.BUILD",
        path = "/usr",
    )
