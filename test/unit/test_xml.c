/*
 * test_xml.c: the XML reader for object-store responses
 * (storage/backend/xml.c).
 *
 * What a user relies on: the answers of AWS S3, s3rver, Azure Blob Storage
 * and WebDAV servers are read into the right names and texts whatever
 * namespace prefix they use; entities, character references and CDATA
 * decode to the exact text; every malformed or hostile document is refused
 * with SQLITE_CORRUPT and a message giving the byte offset; nesting is
 * bounded; running out of memory is SQLITE_NOMEM and leaks nothing; a large
 * listing parses.
 */
#include <stdlib.h>
#include <string.h>

#include "storage/backend/xml.h"
#include "test/tap.h"
#include "test/unit/api_init.h"

/* ---- allocator with a failure countdown and a live-allocation count ---- */

static sqlite3_mem_methods mem_orig;
static long mem_countdown = -1; /* fail when it reaches 0; -1 = never */
static long mem_calls;          /* allocations attempted */
static long mem_live;           /* mallocs minus frees */

static void *
mem_malloc(int n)
{
    void *p;
    mem_calls++;
    if (mem_countdown >= 0 && mem_countdown-- == 0)
        return NULL;
    p = mem_orig.xMalloc(n);
    if (p)
        mem_live++;
    return p;
}

static void
mem_free(void *p)
{
    if (p)
        mem_live--;
    mem_orig.xFree(p);
}

static void *
mem_realloc(void *p, int n)
{
    mem_calls++;
    if (mem_countdown >= 0 && mem_countdown-- == 0)
        return NULL;
    return mem_orig.xRealloc(p, n);
}

static void
mem_setup(void)
{
    sqlite3_mem_methods m;

    sqlite3_config(SQLITE_CONFIG_GETMALLOC, &mem_orig);
    m = mem_orig;
    m.xMalloc = mem_malloc;
    m.xFree = mem_free;
    m.xRealloc = mem_realloc;
    sqlite3_config(SQLITE_CONFIG_MALLOC, &m);
}

/* ---- documents as servers send them ---- */

static const char doc_s3_list[] =
    "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n"
    "<ListBucketResult xmlns=\"http://s3.amazonaws.com/doc/2006-03-01/\">"
    "<Name>litestream-bucket</Name><Prefix>db/ltx/0/</Prefix>"
    "<KeyCount>3</KeyCount><MaxKeys>3</MaxKeys><Delimiter>/</Delimiter>"
    "<IsTruncated>true</IsTruncated>"
    "<ContinuationToken>1w41l63U0xa8q7smH50vCxyTQqdxo69O3EmK28Bi5"
    "PcROI4wI/EyIJg==</ContinuationToken>"
    "<NextContinuationToken>1ueGcxLPRx1Tr/XYExHnhbYLgveDs2J/wm36H"
    "y4vbOwM+Ab/Q+x3q0mQ=</NextContinuationToken>"
    "<StartAfter>db/ltx/0/0000000000000000</StartAfter><Contents>"
    "<Key>db/ltx/0/0000000000000001-0000000000000001.ltx</Key>"
    "<LastModified>2024-05-01T12:00:00.000Z</LastModified>"
    "<ETag>&quot;9b2cf535f27731c974343645a3985328&quot;</ETag>"
    "<ChecksumAlgorithm>CRC64NVME</ChecksumAlgorithm><Size>4096</Size>"
    "<StorageClass>STANDARD</StorageClass></Contents><Contents>"
    "<Key>db/ltx/0/0000000000000002-0000000000000002.ltx</Key>"
    "<LastModified>2024-05-01T12:00:01.000Z</LastModified>"
    "<ETag>&quot;d41d8cd98f00b204e9800998ecf8427e&quot;</ETag>"
    "<Size>512</Size><StorageClass>STANDARD</StorageClass></Contents>"
    "<CommonPrefixes><Prefix>db/ltx/0/sub/</Prefix></CommonPrefixes>"
    "<Contents><Key>db/ltx/0/0000000000000003-0000000000000005.ltx</Key>"
    "<LastModified>2024-05-01T12:00:02.000Z</LastModified>"
    "<ETag>&quot;3858f62230ac3c915f300c664312c11f-2&quot;</ETag>"
    "<Size>10485760</Size><StorageClass>STANDARD</StorageClass>"
    "</Contents></ListBucketResult>\n";

static const char doc_s3rver_list[] =
    "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n"
    "<ListBucketResult xmlns=\"http://doc.s3.amazonaws.com/2006-03-01/\">\n"
    "  <IsTruncated>false</IsTruncated>\n"
    "  <Contents>\n"
    "    <Key>db/ltx/0/0000000000000001-0000000000000001.ltx</Key>\n"
    "    <LastModified>2024-05-01T12:00:00.000Z</LastModified>\n"
    "    <ETag>&quot;9b2cf535f27731c974343645a3985328&quot;</ETag>\n"
    "    <Size>4096</Size>\n"
    "    <StorageClass>STANDARD</StorageClass>\n"
    "    <Owner>\n"
    "      <ID>123456789000</ID>\n"
    "      <DisplayName>S3rver</DisplayName>\n"
    "    </Owner>\n"
    "  </Contents>\n"
    "  <Contents>\n"
    "    <Key>db/ltx/0/0000000000000002-0000000000000002.ltx</Key>\n"
    "    <LastModified>2024-05-01T12:00:01.000Z</LastModified>\n"
    "    <ETag>&quot;d41d8cd98f00b204e9800998ecf8427e&quot;</ETag>\n"
    "    <Size>512</Size>\n"
    "    <StorageClass>STANDARD</StorageClass>\n"
    "    <Owner>\n"
    "      <ID>123456789000</ID>\n"
    "      <DisplayName>S3rver</DisplayName>\n"
    "    </Owner>\n"
    "  </Contents>\n"
    "  <Name>litestream-bucket</Name>\n"
    "  <Prefix>db/ltx/0/</Prefix>\n"
    "  <MaxKeys>1000</MaxKeys>\n"
    "  <KeyCount>2</KeyCount>\n"
    "</ListBucketResult>\n";

static const char doc_s3_error[] =
    "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n"
    "<Error><Code>NoSuchKey</Code>"
    "<Message>The specified key does not exist.</Message>"
    "<Key>db/ltx/0/0000000000000009-0000000000000009.ltx</Key>"
    "<RequestId>4442587FB7D0A2F9</RequestId>"
    "<HostId>eftixk72aD6Ap51TnqcoF8eFidJG9Z/2mkiDFu8yU9AS1ed4OpIs"
    "zj7UDNEHGran</HostId></Error>\n";

static const char doc_s3_initiate[] =
    "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n"
    "<InitiateMultipartUploadResult xmlns=\"http://s3.amazonaws.co"
    "m/doc/2006-03-01/\"><Bucket>litestream-bucket</Bucket>"
    "<Key>db/snapshot.ltx</Key>"
    "<UploadId>VXBsb2FkIElEIGZvciA2aWWpbmcncyBteS1tb3ZpZS5tMnRzIH"
    "VwbG9hZA</UploadId></InitiateMultipartUploadResult>\n";

static const char doc_s3_complete[] =
    "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n"
    "<CompleteMultipartUploadResult xmlns=\"http://s3.amazonaws.co"
    "m/doc/2006-03-01/\">"
    "<Location>https://litestream-bucket.s3.us-east-1.amazonaws.c"
    "om/db/snapshot.ltx</Location><Bucket>litestream-bucket</Bucket>"
    "<Key>db/snapshot.ltx</Key>"
    "<ETag>&quot;3858f62230ac3c915f300c664312c11f-9&quot;</ETag>"
    "</CompleteMultipartUploadResult>\n";

static const char doc_s3_delete[] =
    "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n"
    "<DeleteResult xmlns=\"http://s3.amazonaws.com/doc/2006-03-01/\">"
    "<Deleted><Key>db/ltx/0/a.ltx</Key></Deleted><Error>"
    "<Key>db/ltx/0/b.ltx</Key><Code>AccessDenied</Code>"
    "<Message>Access Denied</Message></Error><Deleted>"
    "<Key>db/ltx/0/c.ltx</Key><DeleteMarker>true</DeleteMarker>"
    "<DeleteMarkerVersionId>NeQt5xeFTfgPJD8B4CGWnkSLtluMr11s</Del"
    "eteMarkerVersionId></Deleted></DeleteResult>\n";

static const char doc_azure_list[] =
    "<?xml version=\"1.0\" encoding=\"utf-8\"?>\n"
    "<EnumerationResults ServiceEndpoint=\"https://myaccount.blob."
    "core.windows.net/\" ContainerName=\"replicas\">\n"
    "  <Prefix>db/ltx/0/</Prefix>\n"
    "  <MaxResults>2</MaxResults>\n"
    "  <Blobs>\n"
    "    <Blob>\n"
    "      <Name>db/ltx/0/0000000000000001-0000000000000001.ltx</Name>\n"
    "      <Properties>\n"
    "        <Creation-Time>Wed, 01 May 2024 12:00:00 GMT</Creation-Time>\n"
    "        <Last-Modified>Wed, 01 May 2024 12:00:00 GMT</Last-Modified>\n"
    "        <Etag>0x8DC69E2A3B4C5D6</Etag>\n"
    "        <Content-Length>4096</Content-Length>\n"
    "        <Content-Type>application/octet-stream</Content-Type>\n"
    "        <Content-MD5>m4z1NfJ3McSXQ0NkWjmFMg==</Content-MD5>\n"
    "        <BlobType>BlockBlob</BlobType>\n"
    "        <LeaseStatus>unlocked</LeaseStatus>\n"
    "        <LeaseState>available</LeaseState>\n"
    "        <ServerEncrypted>true</ServerEncrypted>\n"
    "      </Properties>\n"
    "      <OrMetadata />\n"
    "    </Blob>\n"
    "    <Blob>\n"
    "      <Name>db/ltx/0/0000000000000002-0000000000000002.ltx</Name>\n"
    "      <Properties>\n"
    "        <Last-Modified>Wed, 01 May 2024 12:00:01 GMT</Last-Modified>\n"
    "        <Etag>0x8DC69E2A3B4C5D7</Etag>\n"
    "        <Content-Length>512</Content-Length>\n"
    "        <BlobType>BlockBlob</BlobType>\n"
    "      </Properties>\n"
    "    </Blob>\n"
    "  </Blobs>\n"
    "  <NextMarker>2!96!MDAwMDQyIWRiL2x0eC8wLzAwMDAwMDAwMDAwMDAwM"
    "DMtMDAwMDAwMDAwMDAwMDAwMy5sdHghMDAwMDI4ITk5OTktMTItMzFUMjM6N"
    "Tk6NTkuOTk5OTk5OVoh</NextMarker>\n"
    "</EnumerationResults>\n";

static const char doc_webdav[] =
    "<?xml version=\"1.0\" encoding=\"utf-8\" ?>\n"
    "<D:multistatus xmlns:D=\"DAV:\" xmlns:ns0=\"urn:uuid:c2f41010-6"
    "5b3-11d1-a29f-00aa00c14882/\">\n"
    "  <D:response>\n"
    "    <D:href>/dav/db/ltx/0/</D:href>\n"
    "    <D:propstat>\n"
    "      <D:prop>\n"
    "        <D:resourcetype><D:collection/></D:resourcetype>\n"
    "        <D:getlastmodified>Wed, 01 May 2024 12:00:00 GMT</D:"
    "getlastmodified>\n"
    "      </D:prop>\n"
    "      <D:status>HTTP/1.1 200 OK</D:status>\n"
    "    </D:propstat>\n"
    "  </D:response>\n"
    "  <D:response>\n"
    "    <D:href>/dav/db/ltx/0/0000000000000001-0000000000000001."
    "ltx</D:href>\n"
    "    <D:propstat>\n"
    "      <D:prop>\n"
    "        <D:resourcetype/>\n"
    "        <D:getcontentlength>4096</D:getcontentlength>\n"
    "        <D:getlastmodified>Wed, 01 May 2024 12:00:00 GMT</D:"
    "getlastmodified>\n"
    "        <D:getetag>\"1000-5f7c2a\"</D:getetag>\n"
    "      </D:prop>\n"
    "      <D:status>HTTP/1.1 200 OK</D:status>\n"
    "    </D:propstat>\n"
    "    <D:propstat>\n"
    "      <D:prop><ns0:Win32FileAttributes/></D:prop>\n"
    "      <D:status>HTTP/1.1 404 Not Found</D:status>\n"
    "    </D:propstat>\n"
    "  </D:response>\n"
    "</D:multistatus>\n";

/* ---- helpers ---- */

/* Parses a NUL-terminated document that must be well-formed. */
static xml_node *
parse(const char *zDoc, const char *zWhat)
{
    xml_node *root = NULL;
    char *zErr = NULL;
    int rc = xml_parse(zDoc, strlen(zDoc), &root, &zErr);

    if (!ok(rc == SQLITE_OK && root != NULL && zErr == NULL, "%s parses",
            zWhat))
        diag("rc=%d %s", rc, zErr ? zErr : "(no message)");
    sqlite3_free(zErr);
    return root;
}

static int
str_eq(const char *a, const char *b)
{
    return a != NULL && b != NULL && strcmp(a, b) == 0;
}

static int
count_named(const xml_node *parent, const char *zName)
{
    int n = 0;
    const xml_node *c;
    for (c = xml_child(parent, zName); c; c = xml_next(c))
        n++;
    return n;
}

/*
 * z[0..n) must be refused with SQLITE_CORRUPT, a NULL root and the message
 * "litestream: malformed XML at byte <at>: " followed by text containing
 * zWhy.
 */
static void
bad_n(const char *z, size_t n, long at, const char *zWhy)
{
    xml_node *root = (xml_node *)1;
    char *zErr = NULL;
    char zWant[128];
    int rc = xml_parse(z, n, &root, &zErr);
    int good;

    snprintf(zWant, sizeof(zWant),
             "litestream: malformed XML at byte %ld: ", at);
    good = rc == SQLITE_CORRUPT && root == NULL && zErr != NULL &&
           strncmp(zErr, zWant, strlen(zWant)) == 0 &&
           strstr(zErr + strlen(zWant), zWhy) != NULL;
    if (!ok(good, "malformed: byte %ld, %s", at, zWhy))
        diag("rc=%d message=%s", rc, zErr ? zErr : "(none)");
    sqlite3_free(zErr);
    if (root != (xml_node *)1)
        xml_free(root);
}

static void
bad(const char *z, long at, const char *zWhy)
{
    bad_n(z, strlen(z), at, zWhy);
}

/* ---- real-world documents ---- */

static void
test_s3_list(void)
{
    xml_node *root = parse(doc_s3_list, "AWS S3 ListObjectsV2");
    const xml_node *c;
    int i = 0;
    static const char *const aKey[] = {
        "db/ltx/0/0000000000000001-0000000000000001.ltx",
        "db/ltx/0/0000000000000002-0000000000000002.ltx",
        "db/ltx/0/0000000000000003-0000000000000005.ltx",
    };
    static const char *const aSize[] = {"4096", "512", "10485760"};

    ok(root && str_eq(root->name, "ListBucketResult"),
       "root is ListBucketResult (xmlns attribute skipped)");
    ok(str_eq(xml_text(root, "IsTruncated"), "true"), "IsTruncated");
    ok(str_eq(xml_text(root, "NextContinuationToken"),
              "1ueGcxLPRx1Tr/XYExHnhbYLgveDs2J/wm36Hy4vbOwM+Ab/Q+x3q0mQ="),
       "NextContinuationToken keeps + / =");
    ok(str_eq(xml_text(root, "CommonPrefixes/Prefix"), "db/ltx/0/sub/"),
       "path through CommonPrefixes");
    ok(count_named(root, "Contents") == 3,
       "three Contents, xml_next skips the CommonPrefixes between them");
    for (c = xml_child(root, "Contents"); c && i < 3; c = xml_next(c), i++) {
        ok(str_eq(xml_text(c, "Key"), aKey[i]) &&
               str_eq(xml_text(c, "Size"), aSize[i]),
           "Contents %d: Key and Size", i + 1);
    }
    c = xml_child(root, "Contents");
    ok(str_eq(xml_text(c, "ETag"), "\"9b2cf535f27731c974343645a3985328\""),
       "ETag: &quot; decoded");
    ok(str_eq(xml_text(c, "LastModified"), "2024-05-01T12:00:00.000Z"),
       "LastModified");
    ok(root && str_eq(root->text, ""), "root without character data has \"\"");
    xml_free(root);
}

static void
test_s3rver_list(void)
{
    xml_node *root = parse(doc_s3rver_list, "s3rver ListObjectsV2");
    const xml_node *c = xml_child(root, "Contents");

    ok(root && str_eq(root->name, "ListBucketResult"),
       "root is ListBucketResult in s3rver's namespace");
    ok(str_eq(xml_text(root, "IsTruncated"), "false"), "IsTruncated");
    ok(xml_text(root, "NextContinuationToken") == NULL,
       "no NextContinuationToken: NULL");
    ok(count_named(root, "Contents") == 2, "two Contents");
    ok(str_eq(xml_text(c, "Key"),
              "db/ltx/0/0000000000000001-0000000000000001.ltx") &&
           str_eq(xml_text(c, "Size"), "4096") &&
           str_eq(xml_text(c, "Owner/DisplayName"), "S3rver"),
       "first Contents: Key, Size, Owner/DisplayName");
    ok(str_eq(xml_text(xml_next(c), "Size"), "512"), "second Contents: Size");
    ok(str_eq(xml_text(c, "ETag"), "\"9b2cf535f27731c974343645a3985328\""),
       "ETag decoded");
    ok(root && str_eq(root->text, "\n  \n  \n  \n  \n  \n  \n  \n"),
       "indentation kept as the root's own text");
    ok(str_eq(xml_text(root, "Name"), "litestream-bucket"),
       "Name after the Contents");
    xml_free(root);
}

static void
test_s3_small(void)
{
    xml_node *root = parse(doc_s3_error, "S3 Error");

    ok(root && str_eq(root->name, "Error"), "root is Error");
    ok(str_eq(xml_text(root, "Code"), "NoSuchKey") &&
           str_eq(xml_text(root, "Message"),
                  "The specified key does not exist.") &&
           str_eq(xml_text(root, "RequestId"), "4442587FB7D0A2F9"),
       "Error: Code, Message, RequestId");
    xml_free(root);

    root = parse(doc_s3_initiate, "InitiateMultipartUploadResult");
    ok(str_eq(xml_text(root, "UploadId"), "VXBsb2FkIElEIGZvciA2aWWpbmcncyBteS1"
                                          "tb3ZpZS5tMnRzIHVwbG9hZA"),
       "UploadId");
    xml_free(root);

    root = parse(doc_s3_complete, "CompleteMultipartUploadResult");
    ok(root && str_eq(root->name, "CompleteMultipartUploadResult") &&
           str_eq(xml_text(root, "ETag"),
                  "\"3858f62230ac3c915f300c664312c11f-9\"") &&
           str_eq(xml_text(root, "Key"), "db/snapshot.ltx"),
       "CompleteMultipartUploadResult: ETag, Key");
    xml_free(root);
}

static void
test_s3_delete(void)
{
    xml_node *root = parse(doc_s3_delete, "S3 DeleteResult");
    const xml_node *d = xml_child(root, "Deleted");
    const xml_node *e = xml_child(root, "Error");

    ok(count_named(root, "Deleted") == 2 && count_named(root, "Error") == 1,
       "two Deleted, one Error");
    ok(str_eq(xml_text(d, "Key"), "db/ltx/0/a.ltx") &&
           str_eq(xml_text(xml_next(d), "Key"), "db/ltx/0/c.ltx") &&
           str_eq(xml_text(xml_next(d), "DeleteMarker"), "true"),
       "Deleted keys in order");
    ok(str_eq(xml_text(e, "Key"), "db/ltx/0/b.ltx") &&
           str_eq(xml_text(e, "Code"), "AccessDenied"),
       "Error entry: Key and Code");
    xml_free(root);
}

static void
test_azure_list(void)
{
    xml_node *root = parse(doc_azure_list, "Azure EnumerationResults");
    const xml_node *b = xml_child(xml_child(root, "Blobs"), "Blob");

    ok(root && str_eq(root->name, "EnumerationResults"),
       "root is EnumerationResults (attributes skipped)");
    ok(str_eq(xml_text(b, "Name"),
              "db/ltx/0/0000000000000001-0000000000000001.ltx") &&
           str_eq(xml_text(b, "Properties/Content-Length"), "4096"),
       "first Blob: Name and Properties/Content-Length");
    ok(str_eq(xml_text(xml_next(b), "Properties/Content-Length"), "512") &&
           xml_next(xml_next(b)) == NULL,
       "second and last Blob");
    ok(xml_child(b, "OrMetadata") != NULL &&
           str_eq(xml_text(b, "OrMetadata"), ""),
       "self-closing <OrMetadata /> is an element with text \"\"");
    ok(str_eq(xml_text(root, "NextMarker"),
              "2!96!MDAwMDQyIWRiL2x0eC8wLzAwMDAwMDAwMDAwMDAwMDMtMDAwMDAwMDAwMD"
              "AwMDAwMy5sdHghMDAwMDI4ITk5OTktMTItMzFUMjM6NTk6NTkuOTk5OTk5OVoh"),
       "NextMarker");
    xml_free(root);
}

static void
test_webdav(void)
{
    xml_node *root = parse(doc_webdav, "WebDAV multistatus");
    const xml_node *r = xml_child(root, "response");
    const xml_node *r2 = xml_next(r);

    ok(root && str_eq(root->name, "multistatus"),
       "D:multistatus -> multistatus");
    ok(str_eq(xml_text(r, "href"), "/dav/db/ltx/0/") &&
           xml_child(xml_child(xml_child(xml_child(r, "propstat"), "prop"),
                               "resourcetype"),
                     "collection") != NULL,
       "first response: a collection");
    ok(str_eq(xml_text(r2, "href"),
              "/dav/db/ltx/0/0000000000000001-0000000000000001.ltx") &&
           str_eq(xml_text(r2, "propstat/prop/getcontentlength"), "4096") &&
           str_eq(xml_text(r2, "propstat/prop/getetag"), "\"1000-5f7c2a\""),
       "second response: href, getcontentlength, getetag");
    ok(str_eq(xml_text(xml_next(xml_child(r2, "propstat")), "status"),
              "HTTP/1.1 404 Not Found") &&
           xml_child(xml_child(xml_next(xml_child(r2, "propstat")), "prop"),
                     "Win32FileAttributes") != NULL,
       "second propstat, other prefix stripped too");
    xml_free(root);
}

/* ---- decoding ---- */

static void
test_decoding(void)
{
    xml_node *root;
    const xml_node *c;

    root = parse("<a>&lt;&gt;&amp;&quot;&apos;</a>", "predefined entities");
    ok(root && str_eq(root->text, "<>&\"'"), "entities decode");
    xml_free(root);

    root = parse("<a>&#65;&#x42;&#x00e9;&#x20AC;&#x1F600;&#0000067;&#9;</a>",
                 "character references");
    ok(root && str_eq(root->text, "AB\xc3\xa9\xe2\x82\xac\xf0\x9f\x98\x80"
                                  "C\t"),
       "decimal and hex references encode as UTF-8");
    xml_free(root);

    root = parse("<a>x<![CDATA[<b>&amp;]]]]>y<![CDATA[]]></a>", "CDATA");
    ok(root && str_eq(root->text, "x<b>&amp;]]y") && root->child == NULL,
       "CDATA is verbatim text, no element inside");
    xml_free(root);

    root = parse("<a>x<b>y</b>z<!-- c -->w<?pi q?>v</a>", "mixed content");
    ok(root && str_eq(root->text, "xzwv") && str_eq(xml_text(root, "b"), "y"),
       "an element's text is its direct pieces; comments and PIs skipped");
    xml_free(root);

    root = parse("<a>  caf\xc3\xa9 \r\n\t</a>", "whitespace");
    ok(root && str_eq(root->text, "  caf\xc3\xa9 \r\n\t"),
       "whitespace and UTF-8 kept exactly");
    xml_free(root);

    root = parse("\xef\xbb\xbf<?xml version=\"1.0\"?>\n<!-- hi -->\n"
                 "<!DOCTYPE a SYSTEM \"a>b.dtd\">\n<a/>\n<!-- bye --><?x?>\n",
                 "BOM, declaration, comments, DOCTYPE, epilog");
    ok(root && str_eq(root->name, "a") && str_eq(root->text, ""),
       "self-closing root");
    xml_free(root);

    root = parse("<s3:r xmlns:s3='u'><s3:b/><c x=\"1>2\" y='a\"b>'\n z = '>'"
                 ">t</c><!-- <d> --><b></b ></s3:r >",
                 "attributes with '>' in quotes");
    c = xml_child(root, "c");
    ok(root && str_eq(root->name, "r") && c && str_eq(c->text, "t") &&
           count_named(root, "b") == 2 && c->child == NULL,
       "quoted '>' does not end the tag; comment hides <d>");
    xml_free(root);
}

static void
test_api(void)
{
    xml_node *root = parse("<a><b><c>1</c></b><b><c>2</c></b></a>", "api");

    ok(xml_child(NULL, "b") == NULL && xml_next(NULL) == NULL &&
           xml_text(NULL, "b") == NULL && xml_child(root, NULL) == NULL &&
           xml_text(root, NULL) == NULL,
       "NULL arguments give NULL");
    ok(xml_text(root, "x") == NULL && xml_text(root, "b/x") == NULL &&
           xml_text(root, "b//c") == NULL && xml_text(root, "/b") == NULL &&
           xml_text(root, "b/c/") == NULL,
       "missing elements and empty steps give NULL");
    ok(str_eq(xml_text(root, "b/c"), "1"), "path takes the first match");
    ok(str_eq(xml_text(root, ""), ""), "empty path names the parent itself");
    ok(xml_child(root, "") == NULL && xml_child(root, "bb") == NULL &&
           xml_child(xml_child(root, "b"), "") == NULL,
       "names compare whole");
    xml_free(root);
    xml_free(NULL);
}

/* ---- malformed documents ---- */

static void
test_malformed(void)
{
    bad("", 0, "empty document");
    bad("\xef\xbb\xbf", 3, "empty document");
    bad(" \n ", 3, "no root element");
    bad("<!-- only -->", 13, "no root element");
    bad("hello", 0, "text before the root element");
    bad("<a>", 0, "unterminated element <a>");
    bad("<a><b>x</b>", 0, "unterminated element <a>");
    bad("<a></b>", 3, "mismatched end tag (expected </a>)");
    bad("<a><b></a></b>", 6, "mismatched end tag (expected </b>)");
    bad("<x:a></y:a>", 5, "mismatched end tag (expected </x:a>)");
    bad("<a", 0, "unterminated tag");
    bad("<", 0, "unterminated tag");
    bad("<a></a", 3, "unterminated tag");
    bad("<a></a x>", 7, "junk in end tag");
    bad("<a b='1", 5, "unterminated attribute value");
    bad("<a b=1/>", 5, "attribute value without quotes");
    bad("<a b/>", 4, "attribute without '='");
    bad("<a b='<'/>", 6, "'<' in attribute value");
    bad("<a x='1'y='2'/>", 8, "missing space before an attribute");
    bad("<a / >", 3, "'/' not followed by '>'");
    bad("<1a/>", 1, "invalid name");
    bad("<:a/>", 1, "invalid name");
    bad("<a:/>", 1, "invalid qualified name");
    bad("<a:b:c/>", 1, "invalid qualified name");
    bad("<a><!-- x", 3, "unterminated comment");
    bad("<a><![CDATA[x]]", 3, "unterminated CDATA section");
    bad("<?xml version='1.0'", 0, "unterminated processing instruction");
    bad("<? x?><a/>", 0, "invalid processing instruction");
    bad("<!DOCTYPE a", 0, "unterminated DOCTYPE");
    bad("<!DOCTYPE a [<!ENTITY x 'y'>]><a>&x;</a>", 12,
        "DOCTYPE with an internal subset");
    bad("<!DOCTYPE a><!DOCTYPE a><a/>", 12, "unexpected '<!' before the root");
    bad("<a><!DOCTYPE a></a>", 3, "unexpected '<!' in content");
    bad("<a/><b/>", 4, "more than one root element");
    bad("<a/>text", 4, "content after the root element");
    bad("<a/><![CDATA[x]]>", 4, "content after the root element");
    bad("<a>]]></a>", 3, "']]>' in text");
    bad("<a>&foo;</a>", 3, "unknown or unterminated entity reference");
    bad("<a>&amp</a>", 3, "unknown or unterminated entity reference");
    bad("<a>&</a>", 3, "unknown or unterminated entity reference");
    bad("<a>&#;</a>", 3, "malformed character reference");
    bad("<a>&#x;</a>", 3, "malformed character reference");
    bad("<a>&#12</a>", 3, "malformed character reference");
    bad("<a>&#X41;</a>", 3, "malformed character reference");
    bad("<a>&#0;</a>", 3, "U+0000, which is not allowed");
    bad("<a>&#x1;</a>", 3, "not allowed in XML");
    bad("<a>&#xD800;</a>", 3, "U+D800, which is not allowed");
    bad("<a>&#xFFFE;</a>", 3, "not allowed in XML");
    bad("<a>&#x110000;</a>", 3, "character reference out of range");
    bad("<a>&#99999999999999999999999;</a>", 3, "out of range");
    bad_n("<a>\0</a>", 8, 3, "NUL byte");
    bad_n("\0", 1, 0, "NUL byte");
    bad("<a>\x01</a>", 3, "control character 0x01");
    bad("<a>\xff</a>", 3, "invalid UTF-8");
    bad("<a>\xc3</a>", 3, "invalid UTF-8");
    bad("<a>\xc0\xaf</a>", 3, "invalid UTF-8");         /* overlong */
    bad("<a>\xed\xa0\x80</a>", 3, "invalid UTF-8");     /* surrogate */
    bad("<a>\xf4\x90\x80\x80</a>", 3, "invalid UTF-8"); /* > U+10FFFF */
    bad("<a>x</a>\xef\xbb\xbf", 8, "content after the root element");
}

/* ---- limits ---- */

static char *
nested(int depth)
{
    char *z = malloc((size_t)depth * 7 + 1), *q = z;
    int i;

    for (i = 0; i < depth; i++, q += 3)
        memcpy(q, "<a>", 3);
    for (i = 0; i < depth; i++, q += 4)
        memcpy(q, "</a>", 4);
    *q = 0;
    return z;
}

static void
test_depth(void)
{
    char *z = nested(64);
    xml_node *root = parse(z, "64 nested elements");
    const xml_node *c = root;
    int n = 0;

    while (c) {
        n++;
        c = c->child;
    }
    ok(n == 64, "all 64 levels are in the tree");
    xml_free(root);
    free(z);

    z = nested(65);
    bad(z, 64 * 3, "elements nested deeper than 64");
    free(z);
}

static void
test_large(void)
{
    const int nContents = 100000;
    size_t cap = (size_t)nContents * 128 + 256, len = 0;
    char *z = malloc(cap);
    xml_node *root;
    const xml_node *c, *last = NULL;
    int i, n = 0;

    len += (size_t)snprintf(z + len, cap - len,
                            "<ListBucketResult xmlns=\"http://s3.amazonaws."
                            "com/doc/2006-03-01/\">");
    for (i = 0; i < nContents; i++)
        len += (size_t)snprintf(z + len, cap - len,
                                "<Contents><Key>k/%08d</Key><ETag>&quot;e&quot;"
                                "</ETag><Size>%d</Size></Contents>\n",
                                i, i);
    len += (size_t)snprintf(z + len, cap - len, "</ListBucketResult>");
    root = parse(z, "ListObjectsV2 with 100000 Contents");
    for (c = xml_child(root, "Contents"); c; c = xml_next(c)) {
        last = c;
        n++;
    }
    ok(n == nContents, "all %d Contents are listed", nContents);
    ok(str_eq(xml_text(last, "Key"), "k/00099999") &&
           str_eq(xml_text(last, "Size"), "99999"),
       "the last one is intact");
    ok(root && strlen(root->text) == (size_t)nContents,
       "the root's text is the %d newlines between them", nContents);
    xml_free(root);
    free(z);
}

/* Every allocation of each parse fails in turn: NOMEM, NULL, no leak. */
static void
test_oom(void)
{
    /* The last is malformed: allocating its message fails too. */
    static const char *const aDoc[] = {
        doc_s3_list,        doc_s3_delete,    doc_webdav,
        "<a>&lt;<b/>x</a>", "<a><b></c></a>",
    };
    size_t k;

    for (k = 0; k < sizeof(aDoc) / sizeof(aDoc[0]); k++) {
        long n, i, nBad = 0, nLeak = 0, live;
        xml_node *root = NULL;
        char *zErr = NULL;
        int rc0;

        mem_calls = 0;
        rc0 = xml_parse(aDoc[k], strlen(aDoc[k]), &root, &zErr);
        n = mem_calls;
        xml_free(root);
        sqlite3_free(zErr);
        for (i = 0; i < n; i++) {
            int rc;
            live = mem_live;
            mem_countdown = i;
            rc = xml_parse(aDoc[k], strlen(aDoc[k]), &root, &zErr);
            mem_countdown = -1;
            if (rc != SQLITE_NOMEM || root != NULL || zErr != NULL)
                nBad++;
            xml_free(root);
            sqlite3_free(zErr);
            if (mem_live != live)
                nLeak++;
        }
        ok(n > 0 && nBad == 0 && nLeak == 0,
           "document %zu (rc %d): each of %ld allocations failing gives "
           "SQLITE_NOMEM, no tree, no leak",
           k + 1, rc0, n);
    }
}

int
main(void)
{
    mem_setup();
    api_init();
    test_s3_list();
    test_s3rver_list();
    test_s3_small();
    test_s3_delete();
    test_azure_list();
    test_webdav();
    test_decoding();
    test_api();
    test_malformed();
    test_depth();
    test_large();
    test_oom();
    return tap_done();
}
