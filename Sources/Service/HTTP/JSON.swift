import Common
import Hummingbird
import HTTPTypes
import NIOCore
import Foundation

enum JSON {
    static func encode<T: Encodable>(_ value: T) -> [UInt8] {
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.sortedKeys, .withoutEscapingSlashes]
        return (try? [UInt8](encoder.encode(value))) ?? Array("{}".utf8)
    }

    static func response<T: Encodable>(_ value: T, status: HTTPResponse.Status = .ok) -> Response {
        Response(status: status, headers: [.contentType: "application/json"], body: .init(byteBuffer: ByteBuffer(bytes: encode(value))))
    }

    static func decode<T: Decodable>(_ type: T.Type, from request: inout Request, limit: Int) async throws -> T {
        try decode(type, from: try await collect(&request, limit: limit).get())
    }

    /// The request body, at most `limit` bytes.
    static func collect(_ request: inout Request, limit: Int) async -> Result<[UInt8], ServiceError> {
        do {
            return .success(Array(try await request.collectBody(upTo: limit).readableBytesView))
        } catch {
            return .failure(ServiceError(413, "too-large", "the request body is over \(limit) bytes"))
        }
    }

    static func decode<T: Decodable>(_ type: T.Type, from bytes: [UInt8]) throws -> T {
        let data = Data(bytes)
        if let object = try? JSONSerialization.jsonObject(with: data) as? [String: Any] {
            // A misspelt member ("validty") must not be ignored silently: the request would get
            // the defaults its sender did not mean.
            if let known = (T.self as? any KnownMembers.Type)?.members,
               let unknown = object.keys.sorted().first(where: { !known.contains($0) }) {
                throw ServiceError(400, "bad-json", "unknown member \"\(unknown.prefix(60).debugEscaped)\"; this endpoint takes \(known.sorted().joined(separator: ", "))")
            }
            // No text from outside carries a control character (a NUL among them) any further:
            // not into a certificate, a log line, or the ledger and its audit chain. A public key
            // is the exception: it may come as a multi-line RFC 4716 block, its own strict parser
            // says what is wrong with it (a pasted private key, say), and it is stored as a blob.
            if let member = controlCharacterMember(object.filter { $0.key != "publicKey" }) {
                throw ServiceError(400, "bad-request", "\(member) contains a control character or NUL byte; send printable text")
            }
        }
        do {
            return try JSONDecoder().decode(T.self, from: data)
        } catch let DecodingError.keyNotFound(key, _) {
            throw ServiceError(400, "bad-json", "the request is missing \"\(key.stringValue)\"")
        } catch let DecodingError.typeMismatch(_, context) {
            throw ServiceError(400, "bad-json", "\(context.codingPath.map(\.stringValue).joined(separator: ".")): wrong type (\(context.debugDescription))")
        } catch {
            throw ServiceError(400, "bad-json", "the request body is not the JSON this endpoint takes (see docs/openapi.yaml)")
        }
    }
}

/// The path ("principals[1]") of the first string in a decoded JSON value that holds a control
/// character, member names included, or nil.
func controlCharacterMember(_ value: Any, path: String = "") -> String? {
    func hasControl(_ text: String) -> Bool { text.unicodeScalars.contains { $0.value < 0x20 || $0.value == 0x7f } }
    switch value {
    case let text as String:
        return hasControl(text) ? (path.isEmpty ? "the request" : path) : nil
    case let array as [Any]:
        for (i, element) in array.enumerated() {
            if let found = controlCharacterMember(element, path: "\(path)[\(i)]") { return found }
        }
    case let object as [String: Any]:
        for (key, element) in object.sorted(by: { $0.key < $1.key }) {
            if hasControl(key) { return "a member name" }
            if let found = controlCharacterMember(element, path: path.isEmpty ? key : "\(path).\(key)") { return found }
        }
    default: break
    }
    return nil
}

/// Request bodies whose JSON members are checked against the list they take.
protocol KnownMembers { static var members: Set<String> { get } }
extension ServiceAPI.ChallengeRequest: KnownMembers { static var members: Set<String> { ["identity"] } }
extension ServiceAPI.CertificateRequest: KnownMembers { static var members: Set<String> { ["publicKey", "type", "principals", "validity"] } }
extension ServiceAPI.RevocationRequest: KnownMembers {
    static var members: Set<String> { ["serial", "serials", "keyId", "publicKey", "principal", "user", "reason"] }
}
