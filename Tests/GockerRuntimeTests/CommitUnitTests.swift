import GockerCore
import Testing
@testable import GockerRuntime

/// What a committed image runs, and the names images travel under.
struct CommitUnitTests {
    func spec(args: [String], env: [String], cwd: String = "/") -> Spec {
        Spec(process: Spec.Process(args: args, env: env, cwd: cwd))
    }

    @Test func theContainersCommandEnvironmentDirectoryAndUser() {
        let image = ImageConfig(Cmd: ["sh"], Env: ["PATH=/bin"])
        let c = Engine.containerConfig(spec: spec(args: ["sh", "-c", "echo hi"], env: ["PATH=/bin", "HOSTNAME=abc", "FOO=1"],
                                                  cwd: "/tmp"), user: "nobody", image: image)
        #expect(c.Cmd == ["sh", "-c", "echo hi"] && c.Entrypoint == nil)
        #expect(c.Env == ["PATH=/bin", "FOO=1"], "HOSTNAME is the runtime's, not the image's")
        #expect(c.WorkingDir == "/tmp" && c.User == "nobody")
        // Defaults stay unset, as in the image.
        let plain = Engine.containerConfig(spec: spec(args: ["sh"], env: ["PATH=/bin"]), user: "0", image: image)
        #expect(plain == ImageConfig(Cmd: ["sh"], Env: ["PATH=/bin"]))
    }

    @Test func anEntrypointKeptStaysAndOneReplacedGoes() {
        let image = ImageConfig(Cmd: ["--help"], Entrypoint: ["/bin/tool", "-v"])
        let kept = Engine.containerConfig(spec: spec(args: ["/bin/tool", "-v", "run"], env: []), user: "0", image: image)
        #expect(kept.Entrypoint == ["/bin/tool", "-v"] && kept.Cmd == ["run"])
        let replaced = Engine.containerConfig(spec: spec(args: ["sh", "-c", "x"], env: []), user: "0", image: image)
        #expect(replaced.Entrypoint == nil && replaced.Cmd == ["sh", "-c", "x"])
    }

    @Test func namesAsContainerdAndDockerWriteThem() throws {
        #expect(OCI.fullName(try ImageReference(parsing: "web:v2")) == "docker.io/library/web:v2")
        #expect(OCI.fullName(try ImageReference(parsing: "me/web")) == "docker.io/me/web:latest")
        #expect(OCI.fullName(try ImageReference(parsing: "localhost:5000/web:1")) == "localhost:5000/web:1")
        #expect(OCI.fullName(try ImageReference(parsing: "localhost/web:1")) == "localhost/web:1")
        #expect(try OCI.shortName("docker.io/library/web:v2").description == "web:v2")
        #expect(try OCI.shortName("docker.io/me/web:1").description == "me/web:1")
        #expect(try OCI.shortName("quay.io/x/y:2").description == "quay.io/x/y:2")
        #expect(throws: GockerError.self) { try OCI.shortName("Bad Name") }
    }
}
