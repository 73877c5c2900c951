import EtagHTTP
import Testing
@testable import EtagCore

@Suite("Entity tags and RFC 9110 §13.2.2 precondition evaluation")
struct PreconditionTests {
    let current = EntityTag(opaque: Array("abc".utf8))

    @Test func parsingLists() {
        #expect(EntityTagList.parse("*") == .any)
        #expect(
            EntityTagList.parse("\"a\", W/\"b\" ,\"c\"")
                == .tags([
                    EntityTag(opaque: [97]), EntityTag(opaque: [98], weak: true), EntityTag(opaque: [99]),
                ]))
        // Unquoted tags as clients send them.
        #expect(
            EntityTagList.parse("42e98b50d35eb07fc6d595d019cc91c7")
                == .tags([EntityTag(opaque: Array("42e98b50d35eb07fc6d595d019cc91c7".utf8))]))
        #expect(
            EntityTagList.parse("W/abc, def")
                == .tags([EntityTag(opaque: Array("abc".utf8), weak: true), EntityTag(opaque: Array("def".utf8))]))
        #expect(EntityTagList.parse("") == .tags([]))
    }

    /// A parsed list is scanned when it is evaluated; only the whole field may be `*`.
    @Test func listsAreEvaluatedInOnePass() {
        let mixed = EntityTagList.parse("\"x\", *, \"y\"")
        #expect(!mixed.isAny && mixed.tags == [EntityTag(opaque: [120]), EntityTag(opaque: [121])])
        #expect(!mixed.ifMatchPasses(current: current), "a * among tags is malformed, not a pass")
        #expect(mixed.ifNoneMatchPasses(current: current))
        #expect(EntityTagList.parse("  *  ").isAny)
        let list = EntityTagList.parse(", junk, W/\"abc\", \"q\"")
        #expect(!list.isAny && list.first == EntityTag(opaque: Array("junk".utf8)))
        #expect(!list.ifMatchPasses(current: current), "a weak tag never matches If-Match")
        #expect(!list.ifNoneMatchPasses(current: current), "a weak tag matches If-None-Match")
        #expect(EntityTagList.parse("W/*").tags == [EntityTag(opaque: [42], weak: true)], "W/* is a tag, not *")
        // A field value inside a larger buffer: only its range is read.
        let head = Array("xx \"abc\" yy".utf8)
        #expect(EntityTagList.parse(bytes: head, in: 3..<8).tags == [current])
    }

    /// RFC 9110 §8.8.3 / §13.1 exactly, plus bare tags: a malformed element matches nothing, so it never yields a
    /// 304 or lets a write through.
    @Test func malformedElementsMatchNothing() {
        let t = "abc"
        let cases: [(String, Bool)] = [
            ("\"\(t)\"", true),
            (" \"\(t)\" ", true),
            (",, \"\(t)\" ,", true),
            ("\"x\",\"\(t)\"", true),
            ("\"x\" ,\t\"\(t)\"", true),
            ("\(t)", true),  // bare, as curl users type it
            ("x, \(t)", true),
            ("\"\(t)\"x", false),
            ("\"\(t)\" x", false),
            ("\"\(t)\"junk, \"z\"", false),
            ("\"\(t)", false),  // unterminated
            ("\"\(t)\"\"", false),
            ("\"a b\", \(t)x", false),  // a space is no etagc; the bare one is another tag
            ("W/ \"\(t)\"", false),
            ("\"\(t)\"W/", false),
            ("*, \"\(t)\"", true),  // the * is malformed; the tag after it still counts
            ("\"junk, \"\(t)\"", false),  // the quote opened by junk swallows the list up to the next quote
        ]
        for (field, matches) in cases {
            let list = EntityTagList.parse(field)
            #expect(list.ifMatchPasses(current: current) == matches, "If-Match: \(field)")
            #expect(list.ifNoneMatchPasses(current: current) == !matches, "If-None-Match: \(field)")
        }
        // A weak tag matches If-None-Match (weak comparison) but never If-Match (strong).
        #expect(!EntityTagList.parse("W/\"\(t)\"").ifMatchPasses(current: current))
        #expect(!EntityTagList.parse("W/\"\(t)\"").ifNoneMatchPasses(current: current))
        #expect(EntityTagList.parse("\"a,b\"").tags == [EntityTag(opaque: Array("a,b".utf8))], "a comma is etagc")
    }

    @Test func comparison() {
        let weak = EntityTag(opaque: Array("abc".utf8), weak: true)
        #expect(current.strongMatches(current))
        #expect(!weak.strongMatches(current))
        #expect(weak.weakMatches(current))
        #expect(current.description == "\"abc\"")
        #expect(weak.description == "W/\"abc\"")
    }

    /// (method, If-Match, If-None-Match, current exists, expected)
    static let table: [(HTTPMethod, String?, String?, Bool, PreconditionOutcome)] = [
        (.get, nil, nil, true, .proceed),
        (.get, nil, "\"abc\"", true, .notModified),
        (.get, nil, "W/\"abc\"", true, .notModified),  // weak comparison for If-None-Match
        (.head, nil, "abc", true, .notModified),  // unquoted accepted
        (.get, nil, "\"x\", \"abc\"", true, .notModified),
        (.get, nil, "\"x\"", true, .proceed),
        (.get, nil, "*", true, .notModified),
        (.get, nil, "*", false, .proceed),
        (.put, nil, "*", true, .preconditionFailed),  // create-only PUT when it exists
        (.put, nil, "*", false, .proceed),
        (.put, "\"abc\"", nil, true, .proceed),
        (.put, "W/\"abc\"", nil, true, .preconditionFailed),  // a weak tag never matches If-Match
        (.put, "\"old\"", nil, true, .preconditionFailed),
        (.put, "*", nil, true, .proceed),
        (.put, "*", nil, false, .preconditionFailed),
        (.delete, "\"old\", \"abc\"", nil, true, .proceed),
        (.get, "\"old\"", "\"abc\"", true, .preconditionFailed),  // If-Match is evaluated first
        (.put, "\"abc\"", "\"abc\"", true, .preconditionFailed),
    ]

    @Test(arguments: 0..<table.count)
    func evaluationOrder(_ i: Int) {
        let (method, im, inm, exists, expected) = Self.table[i]
        let c = Conditions(
            ifMatch: im.map { EntityTagList.parse($0) }, ifNoneMatch: inm.map { EntityTagList.parse($0) })
        #expect(evaluatePreconditions(method: method, c, current: exists ? current : nil) == expected, "row \(i)")
    }

    @Test func conditionsAreReadFromAllFieldLines() throws {
        let raw = Array(
            "GET / HTTP/1.1\r\nHost: a\r\nIf-None-Match: \"a\"\r\nif-none-match: \"b\"\r\nIf-Modified-Since: x\r\n\r\n"
                .utf8)
        let head = try raw.withUnsafeBytes { b -> RequestHead in
            guard case .complete(let h, _) = try RequestParser.parse(b, limits: HTTPLimits()) else {
                throw HTTPParseError(0, "")
            }
            return h
        }
        let c = Conditions(head.head)
        #expect(c.ifNoneMatch == .tags([EntityTag(opaque: [97]), EntityTag(opaque: [98])]))
        #expect(c.hasIfModifiedSince)
        #expect(c.ifMatch == nil)
    }
}
