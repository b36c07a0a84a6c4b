import Testing
@testable import GockerCore

struct PathsTests {
    @Test(arguments: [
        ("rel", "/work/rel"), ("./a/../b", "/work/b"), ("../up", "/up"), ("a//b/", "/work/a/b"), ("/abs/./x", "/abs/x"),
        ("/", "/"), ("..", "/"), ("", ""),
    ])
    func madeAbsoluteAndClean(path: String, expected: String) {
        #expect(Paths.absolute(path, cwd: { "/work" }) == expected)
    }
}
